"""The non-autoregressive encoder-decoder every model of the plugin builds on.

* Encoder: fairseq's own ``TransformerEncoder``.
* Decoder: fairseq's ``TransformerDecoder`` layers run **without** the causal
  mask (Gu et al. 2018, §3): every position sees the whole canvas.
* A length predictor (:mod:`nat_plugins.modules.length_predictor`).
* A dictionary fingerprint stored with the weights, so loading a checkpoint
  with a different dictionary is a clear error instead of the silent
  ~10-BLEU "reproduction" users report (REFERENCE §2).

Canvas convention: decoder inputs hold only the real target positions (no
``<bos>``/``<eos>``), padded with ``<pad>`` on the right.

The model side of decoding (initial canvas, one refinement step, scoring)
lives in each model file; loops over steps live in
:mod:`nat_plugins.decoding`.
"""
import hashlib

import torch
from fairseq.models.transformer import TransformerDecoder, TransformerEncoder, TransformerModel

from ..errors import NATUserError
from .length_predictor import MeanPoolLengthPredictor, source_lengths

__all__ = ["NATDecoder", "NATModelBase", "dictionary_fingerprint", "nat_base_architecture", "SMALL_SIZE", "TINY_SIZE"]

#: The CPU-sized model every plugin model offers as ``<model>_small``:
#: 2+2 layers, 128 wide, FFN 512, 4 heads (REFERENCE §8: a 3+3x256 model
#: still scores BLEU 0 after the few minutes a CPU quickstart can afford).
SMALL_SIZE = dict(
    encoder_embed_dim=128, encoder_ffn_embed_dim=512, encoder_layers=2, encoder_attention_heads=4,
    decoder_layers=2, decoder_attention_heads=4,
)

#: The test-sized model (``<model>_tiny``): 1+1 layers, 32 wide, 2 heads.
TINY_SIZE = dict(
    encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_layers=1, encoder_attention_heads=2,
    decoder_layers=1, decoder_attention_heads=2,
)


def dictionary_fingerprint(dictionary):
    """A stable 60-bit hash of a fairseq Dictionary's symbols (order matters)."""
    digest = hashlib.sha1("\n".join(dictionary.symbols).encode("utf-8")).hexdigest()
    return int(digest[:15], 16)


class NATDecoder(TransformerDecoder):
    """Transformer decoder with full (non-causal) self-attention.

    The forward pass is split so that models can intervene between stages
    (glancing replaces input embeddings; DiffGLAT runs groups of layers):
    :meth:`embed` -> :meth:`run_layers` -> :meth:`finalize` ->
    :meth:`output_layer`.

    :attr:`exit_layer` (ours, for analysis): when set to ``k``, :meth:`features`
    stops after the first ``k`` layers and applies the final layer norm and
    output projection there, as progressive modality learning's middle-layer
    loss does in training (DiffGLAT App. A); ``fairseq-generate
    --decode-exit-layer k`` decodes from that layer.
    """

    #: decode from the output of the first ``exit_layer`` layers (None: all layers)
    exit_layer = None

    def embed(self, tokens, token_embeddings=None):
        """Input embeddings of a canvas.

        Args:
            tokens: [B, L] canvas token ids (``<pad>`` marks absent positions).
            token_embeddings: optional [B, L, C] used instead of the token
                embedding lookup (positions are still added).
        Returns:
            (x [B, L, C], padding_mask [B, L] bool)
        """
        if token_embeddings is None:
            x = self.embed_scale * self.embed_tokens(tokens)
            if self.project_in_dim is not None:
                x = self.project_in_dim(x)
        else:
            x = token_embeddings
        if self.embed_positions is not None:
            x = x + self.embed_positions(tokens)
        if self.layernorm_embedding is not None:
            x = self.layernorm_embedding(x)
        x = self.dropout_module(x)
        return x, tokens.eq(self.padding_idx)

    def run_layers(self, x, encoder_out, padding_mask, start=0, end=None):
        """Run decoder layers ``[start, end)`` on ``x`` [B, L, C] -> [B, L, C]."""
        enc = encoder_out["encoder_out"][0] if encoder_out["encoder_out"] else None
        enc_mask = encoder_out["encoder_padding_mask"][0] if encoder_out["encoder_padding_mask"] else None
        self_mask = padding_mask if padding_mask.any() else None
        x = x.transpose(0, 1)
        for layer in self.layers[start:end]:
            x, _, _ = layer(x, enc, enc_mask, None, self_attn_mask=None, self_attn_padding_mask=self_mask)
        return x.transpose(0, 1)

    def finalize(self, x):
        """Final layer norm and output-dim projection: [B, L, C] -> [B, L, C']."""
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        if self.project_out_dim is not None:
            x = self.project_out_dim(x)
        return x

    def features(self, tokens, encoder_out, token_embeddings=None):
        """Full stack: canvas [B, L] -> features [B, L, C']."""
        x, padding_mask = self.embed(tokens, token_embeddings)
        return self.finalize(self.run_layers(x, encoder_out, padding_mask, end=self.exit_layer))

    def forward(self, prev_output_tokens, encoder_out=None, normalize=False, **unused):
        """Vocabulary scores for every canvas position: [B, L] -> [B, L, V]."""
        logits = self.output_layer(self.features(prev_output_tokens, encoder_out))
        return torch.log_softmax(logits.float(), -1) if normalize else logits


class NATModelBase(TransformerModel):
    """Shared NAT encoder-decoder (subclass per model; never registered alone).

    Subclasses set :attr:`decoding_family` (which decoding strategies apply)
    and implement their side of decoding.
    """

    #: Name of the decoding family the task uses to pick strategies.
    decoding_family = None

    def __init__(self, args, encoder, decoder, src_dict=None, tgt_dict=None):
        super().__init__(args, encoder, decoder)
        self.tgt_dict = decoder.dictionary
        self.pad, self.eos, self.bos, self.unk = (
            self.tgt_dict.pad(),
            self.tgt_dict.eos(),
            self.tgt_dict.bos(),
            self.tgt_dict.unk(),
        )
        self.length_loss_factor = args.length_loss_factor
        self.length_predictor = self.build_length_predictor(args)
        fp = [
            dictionary_fingerprint(src_dict or encoder.dictionary),
            dictionary_fingerprint(tgt_dict or decoder.dictionary),
        ]
        self.register_buffer("dictionary_fingerprint", torch.tensor(fp, dtype=torch.long))

    # ---- construction ---------------------------------------------------
    @staticmethod
    def add_args(parser):
        TransformerModel.add_args(parser)
        parser.add_argument("--length-classes", type=int, metavar="K",
                            help="number of length classes of the length predictor")
        parser.add_argument("--pred-length-offset", action="store_true", default=None,
                            help="predict target length minus source length")
        parser.add_argument("--sg-length-pred", action="store_true", default=None,
                            help="stop the length loss's gradient into the encoder")
        parser.add_argument("--length-loss-factor", type=float, metavar="F",
                            help="weight of the length loss")
        parser.add_argument("--init-from-ar", metavar="PATH",
                            help="start training from scratch with the encoder and token embeddings of this fairseq "
                                 "transformer (AR) checkpoint of the same data (ours; ignored when resuming and at "
                                 "inference; nat_plugins.modules.warm_start)")

    @classmethod
    def build_length_predictor(cls, args):
        return MeanPoolLengthPredictor(
            args.encoder_embed_dim,
            max_length=args.length_classes,
            predict_offset=args.pred_length_offset,
            stop_gradient=args.sg_length_pred,
        )

    @classmethod
    def build_model(cls, args, task):
        from fairseq.tasks import FairseqTask

        if isinstance(task, FairseqTask) and not getattr(task, "decodes_nat_models", False):
            # fairseq's own tasks would decode this model with the autoregressive SequenceGenerator
            raise NATUserError(f"{args.arch} is a non-autoregressive model of nat_plugins: run it with "
                               f"--task nat_translation (not --task {getattr(getattr(task, 'cfg', None), '_name', None) or type(task).__name__})")
        if args.share_all_embeddings and task.source_dictionary != task.target_dictionary:
            raise NATUserError("--share-all-embeddings needs a joined dictionary (fairseq-preprocess --joined-dictionary)")
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
        enc_emb = cls.build_embedding(args, src_dict, args.encoder_embed_dim)
        if args.share_all_embeddings:
            args.share_decoder_input_output_embed = True
            dec_emb = enc_emb
        else:
            dec_emb = cls.build_embedding(args, tgt_dict, args.decoder_embed_dim)
        encoder = TransformerEncoder(args, src_dict, enc_emb)
        decoder = cls.build_decoder(args, tgt_dict, dec_emb)
        return cls(args, encoder, decoder, src_dict, tgt_dict)

    @classmethod
    def build_decoder(cls, args, tgt_dict, embed_tokens):
        return NATDecoder(args, tgt_dict, embed_tokens, no_encoder_attn=False)

    # ---- checkpoint safety --------------------------------------------------
    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        saved = state_dict.get("dictionary_fingerprint")
        if saved is not None and not torch.equal(saved.cpu(), self.dictionary_fingerprint.cpu()):
            which = [n for n, a, b in zip(("source", "target"), saved.tolist(), self.dictionary_fingerprint.tolist()) if a != b]
            raise NATUserError(
                f"the {' and '.join(which)} dictionary given to this run does not match the one the checkpoint was "
                f"trained with ({len(self.tgt_dict)} target symbols now); pass the data-bin directory (dict.*.txt) used for training"
            )
        emb = state_dict.get("encoder.embed_tokens.weight")
        if emb is not None and emb.size(0) != self.encoder.embed_tokens.weight.size(0):
            raise NATUserError(
                f"the source dictionary has {self.encoder.embed_tokens.weight.size(0)} symbols but the checkpoint "
                f"was trained with {emb.size(0)}; pass the data-bin directory used for training"
            )
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)

    # ---- the pieces criterions and decoders call -----------------------------
    def encode(self, src_tokens, src_lengths):
        """fairseq encoder output dict (``encoder_out`` is [S, B, C])."""
        return self.encoder(src_tokens, src_lengths=src_lengths)

    def source_lengths(self, src_tokens):
        """[B, S] -> [B] real source lengths (no ``<eos>``/padding)."""
        return source_lengths(src_tokens, self.encoder.dictionary.pad(), self.encoder.dictionary.eos())

    def length_logits(self, encoder_out):
        """[B, K] length-class logits from the encoder output."""
        mask = encoder_out["encoder_padding_mask"][0] if encoder_out["encoder_padding_mask"] else None
        return self.length_predictor(encoder_out["encoder_out"][0], mask)

    def predict_lengths(self, encoder_out, src_tokens, k=1):
        """Top-``k`` target lengths: ([B, k] long, [B, k] log-probs)."""
        return self.length_predictor.top_lengths(
            self.length_logits(encoder_out), self.source_lengths(src_tokens), k,
            max_len=self.decoder.max_positions(),
        )

    def real_target_mask(self, target):
        """[B, L] True where ``target`` holds a real token (not pad/bos/eos)."""
        return target.ne(self.pad) & target.ne(self.eos) & target.ne(self.bos)

    def forward(self, src_tokens, src_lengths, prev_output_tokens, **kwargs):
        """Logits [B, L, V] of the decoder on canvas ``prev_output_tokens``."""
        encoder_out = self.encode(src_tokens, src_lengths)
        return self.decoder(prev_output_tokens, encoder_out)

    def max_decoder_positions(self):
        return self.decoder.max_positions()

    def set_exit_layer(self, layer):
        """Decode from the first ``layer`` decoder layers (``None`` or 0: all of them)."""
        n = len(self.decoder.layers)
        if layer is not None and not 0 <= int(layer) <= n:
            raise NATUserError(f"--decode-exit-layer {layer}: this model's decoder has {n} layers (use 1..{n})")
        self.decoder.exit_layer = int(layer) if layer else None


def nat_base_architecture(args, **defaults):
    """Fill model args: explicit flags win, then ``defaults``, then base values.

    Shared by every model's arch functions so sizes are written once.
    """
    base = dict(
        encoder_embed_dim=512, encoder_ffn_embed_dim=2048, encoder_layers=6, encoder_attention_heads=8,
        encoder_normalize_before=False, encoder_learned_pos=False,
        decoder_layers=6, decoder_attention_heads=8, decoder_normalize_before=False,
        decoder_learned_pos=False, attention_dropout=0.0, activation_dropout=0.0,
        activation_fn="relu", dropout=0.1, share_decoder_input_output_embed=False,
        share_all_embeddings=True, no_token_positional_embeddings=False, adaptive_input=False,
        length_classes=256, pred_length_offset=False, sg_length_pred=False, length_loss_factor=0.1,
        max_source_positions=1024, max_target_positions=1024,
    )
    base.update(defaults)
    for key, value in base.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    for key, src in (("decoder_embed_dim", "encoder_embed_dim"), ("decoder_ffn_embed_dim", "encoder_ffn_embed_dim")):
        if getattr(args, key, None) is None:
            setattr(args, key, getattr(args, src))
    if getattr(args, "decoder_output_dim", None) is None:
        args.decoder_output_dim = args.decoder_embed_dim
    if getattr(args, "decoder_input_dim", None) is None:
        args.decoder_input_dim = args.decoder_embed_dim
    # Everything else TransformerConfig knows (layerdrop, quant-noise, ...).
    from fairseq.models.transformer.transformer_legacy import base_architecture

    base_architecture(args)
