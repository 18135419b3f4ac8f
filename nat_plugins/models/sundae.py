"""SUNDAE: Step-unrolled Denoising Autoencoder (Savinov et al., ICLR 2022).

The model is a transition function ``f_theta(x | x', source)``: a Transformer
encoder-decoder whose decoder is non-causal and reads a *token sequence* (the
current sample ``x'``), not masks, and predicts every position of ``x``
independently (Eq. 2).  Training: ``sundae_loss`` (unrolled denoising, §2.1);
decoding: the ``sundae_*`` strategies (§2.2, §3.1 "Decoding").

Canvas and the end-of-text symbol
---------------------------------
The decoder works on a canvas of ``W`` positions.  The first ``l`` hold the
target tokens and the rest are "padding after the end", which the model is
trained to predict (§3.1), so it does not have to commit to the predicted
length.  That end/padding symbol is ``<eos>``, not ``<pad>``: in fairseq
``<pad>`` *inputs* are removed from self-attention (key padding mask) and
get no positional embedding, so a model could neither see nor re-predict
them, whereas every canvas position must be an ordinary input that a
sample can change.  ``<pad>`` keeps its fairseq meaning: positions that are
not part of a row's canvas when rows of different widths share a batch.
The output is the canvas cut at the first predicted ``<eos>``.

Canvas width (``--sundae-canvas``):

* ``fixed``: every canvas has ``--sundae-max-canvas`` positions (the
  paper's N = 128; the length embedding is then only a hint);
* ``length``: the canvas has ``2 * ceil(l / 2)`` positions for the gold
  (training) or predicted (decoding) downsampled length ``ceil(l / 2)``;
  much cheaper on CPU, but the model can then only shorten its output by
  emitting ``<eos>`` (length beam candidates hedge the rest).

Without length prediction (``--sundae-no-length-prediction``, the App. C
ablation) the canvas is always fixed and no length embedding is used.

Target length (App. B): :class:`~nat_plugins.modules.sundae_length_predictor.SundaeLengthPredictor`
on detached encodings predicts ``l_d = ceil(l / 2)``; the embedding of
``l_d`` (gold in training, predicted in decoding) is prepended to the encoder
output as one extra, never-masked source position that the decoder attends
to.  Targets longer than the maximum canvas are cropped, as the paper crops
sequences over 128 tokens.

The base class's ``--length-classes``/``--pred-length-offset``/
``--sg-length-pred`` flags configure the classic predictor and are not used
by SUNDAE.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.models import register_model, register_model_architecture

from ..modules.nat_base import SMALL_SIZE, TINY_SIZE, NATModelBase, nat_base_architecture
from ..modules.noise import uniform_random_tokens
from ..modules.sundae_length_predictor import SundaeLengthPredictor, downsample_length

__all__ = ["SUNDAEModel"]


def _num_length_classes(args):
    # l_d = ceil(l / 2) for l <= max canvas, plus class 0.
    return (args.sundae_max_canvas + 1) // 2 + 1


@register_model("sundae")
class SUNDAEModel(NATModelBase):
    decoding_family = "sundae"

    @staticmethod
    def add_args(parser):
        NATModelBase.add_args(parser)
        parser.add_argument("--sundae-no-length-prediction", action="store_true", default=None,
                            help="no length predictor and no length embedding: fixed canvas (App. C ablation)")
        parser.add_argument("--sundae-canvas", choices=["length", "fixed"], default=None,
                            help="canvas width: 2*ceil(l/2) of the gold/predicted length, or always --sundae-max-canvas")
        parser.add_argument("--sundae-max-canvas", type=int, metavar="N",
                            help="maximum (fixed) canvas width N; longer targets are cropped")
        parser.add_argument("--sundae-length-hidden", type=int, metavar="D",
                            help="hidden size d_LP of the length predictor (App. B: 128)")
        parser.add_argument("--sundae-length-blocks", type=int, metavar="K",
                            help="residual blocks of the length predictor (App. B: 6)")

    @classmethod
    def build_length_predictor(cls, args):
        if args.sundae_no_length_prediction:
            return None
        return SundaeLengthPredictor(
            args.encoder_embed_dim, _num_length_classes(args), hidden=args.sundae_length_hidden,
            num_blocks=args.sundae_length_blocks, max_source_length=args.max_source_positions,
        )

    def __init__(self, args, encoder, decoder, src_dict=None, tgt_dict=None):
        super().__init__(args, encoder, decoder, src_dict, tgt_dict)
        self.use_length = not args.sundae_no_length_prediction
        self.fixed_canvas = args.sundae_canvas == "fixed" or not self.use_length
        self.max_canvas = min(args.sundae_max_canvas, self.decoder.max_positions())
        self.num_length_classes = _num_length_classes(args)
        self.end = self.eos  # the end/padding symbol of the canvas (module docstring)
        if self.use_length:
            # h_len = V[l_d], V of size N_d x d_enc (App. B).  Unit-variance
            # init: comparable in scale to the layer-normed encoder states.
            self.length_embed = nn.Embedding(self.num_length_classes, args.encoder_embed_dim)
            nn.init.normal_(self.length_embed.weight, std=1.0)
        symbols = self.tgt_dict.symbols
        special = torch.zeros(len(symbols), dtype=torch.bool)
        special[: self.tgt_dict.nspecial] = True
        for i, s in enumerate(symbols):
            if s.startswith("madeupword"):  # fairseq's vocabulary-size filler
                special[i] = True
        # Noise / prior vocabulary: every symbol except the special ones.
        self.register_buffer("noise_symbols", (~special).nonzero().squeeze(1), persistent=False)
        # Symbols a sample may never take: <pad>/<bos> are never canvas
        # tokens (targets hold real tokens, <unk> included, and <eos>).
        forbidden = special.clone()
        forbidden[self.end] = False
        forbidden[self.unk] = False
        self.register_buffer("output_forbidden", forbidden, persistent=False)

    # ---- lengths and the canvas ---------------------------------------------
    def length_logits(self, encoder_out, src_len=None):
        """[B, N_d + 1] logits over ``l_d = ceil(l / 2)`` (App. B)."""
        if src_len is None:
            # fairseq's src_lengths count the trailing <eos>.
            src_len = (encoder_out["src_lengths"][0].view(-1) - 1).clamp(min=0)
        mask = encoder_out["encoder_padding_mask"][0] if encoder_out["encoder_padding_mask"] else None
        return self.length_predictor(encoder_out["encoder_out"][0], mask, src_len)

    def length_loss(self, encoder_out, src_len, length_d):
        """Summed cross-entropy of gold ``length_d`` [B]; no gradient reaches the encoder."""
        return self.length_predictor.loss(self.length_logits(encoder_out, src_len), length_d)

    def predict_lengths(self, encoder_out, src_tokens, k=1):
        """Top-``k`` nominal lengths ``2 * l_d`` ([B, k] long, [B, k] log-probs).

        Without length prediction: one candidate, the fixed canvas width.
        """
        src_len = self.source_lengths(src_tokens)
        if not self.use_length:
            lengths = torch.full_like(src_len, self.max_canvas).masked_fill(src_len.eq(0), 0)
            return lengths[:, None], torch.zeros(src_len.size(0), 1, device=src_len.device)
        length_d, logp = self.length_predictor.top_lengths(self.length_logits(encoder_out, src_len), src_len, k)
        return (2 * length_d).clamp(max=self.max_canvas), logp

    def canvas_widths(self, lengths):
        """Canvas width [N] for nominal lengths [N] (gold ``l`` or predicted ``2 l_d``)."""
        if self.fixed_canvas:
            return torch.full_like(lengths, self.max_canvas)
        return (2 * downsample_length(lengths)).clamp(2, self.max_canvas)

    def length_classes(self, lengths):
        """``l_d = ceil(l / 2)`` [N] (at least 1) of nominal lengths [N]."""
        return downsample_length(lengths.clamp(max=self.max_canvas)).clamp(1, self.num_length_classes - 1)

    def gold_canvas(self, target):
        """The clean training canvas of fairseq targets.

        Args:
            target: [B, T] target tokens (real tokens, ``<eos>``, padding).
        Returns:
            (canvas [B, W] long: real tokens, then ``<eos>`` up to each row's
             width, then ``<pad>``; in_canvas [B, W] bool; length_d [B] gold
             ``ceil(l / 2)``).  Targets longer than the maximum canvas are
             cropped.
        """
        real = self.real_target_mask(target)
        length = real.sum(1).clamp(max=self.max_canvas)
        widths = self.canvas_widths(length)
        width = int(widths.max())
        if target.size(1) < width:
            target = F.pad(target, (0, width - target.size(1)), value=self.pad)
        target = target[:, :width]
        pos = torch.arange(width, device=target.device)[None, :]
        canvas = torch.where(pos < length[:, None], target, torch.full_like(target, self.end))
        in_canvas = pos < widths[:, None]
        return canvas.masked_fill(~in_canvas, self.pad), in_canvas, self.length_classes(length)

    def with_length(self, encoder_out, length_d):
        """Prepend the embedding of ``length_d`` [N] to the encoder output (App. B).

        Returns a new encoder-out dict whose ``encoder_out`` is [S+1, N, C]
        and ``encoder_padding_mask`` [N, S+1] (the new position is never
        masked); other entries are shared, so fairseq's
        ``reorder_encoder_out`` still applies.  Identity without length
        prediction.
        """
        if not self.use_length:
            return encoder_out
        enc = encoder_out["encoder_out"][0]
        h_len = self.length_embed(length_d.clamp(0, self.num_length_classes - 1)).to(enc)
        out = dict(encoder_out)
        out["encoder_out"] = [torch.cat([h_len.unsqueeze(0), enc], 0)]
        if encoder_out["encoder_padding_mask"]:
            mask = encoder_out["encoder_padding_mask"][0]
            out["encoder_padding_mask"] = [torch.cat([mask.new_zeros(mask.size(0), 1), mask], 1)]
        return out

    def canvas_logits(self, tokens, encoder_out, length_d=None):
        """Logits [N, W, V] of ``f_theta(. | tokens)`` for canvas ``tokens`` [N, W].

        ``encoder_out`` is the plain encoder output; ``length_d`` [N] is the
        (gold or predicted) downsampled length whose embedding is prepended.
        """
        if self.use_length:
            if length_d is None:
                raise ValueError("SUNDAE with length prediction needs length_d")
            encoder_out = self.with_length(encoder_out, length_d)
        return self.decoder(tokens, encoder_out)

    def forward(self, src_tokens, src_lengths, prev_output_tokens, length_d=None, **kwargs):
        """Logits [B, W, V] on canvas ``prev_output_tokens``; ``length_d`` defaults
        to half the canvas width (the ``length`` canvas convention)."""
        encoder_out = self.encode(src_tokens, src_lengths)
        if length_d is None and self.use_length:
            length_d = self.length_classes(prev_output_tokens.ne(self.pad).sum(1))
        return self.canvas_logits(prev_output_tokens, encoder_out, length_d)

    # ---- sampling -------------------------------------------------------------
    def restrict(self, logits):
        """fp32 logits with symbols that are never canvas tokens set to -inf."""
        return logits.float().masked_fill(self.output_forbidden, float("-inf"))

    def sample(self, logits, temperature=1.0, generator=None):
        """Sample [N, W] from ``logits`` [N, W, V] at ``temperature`` (0: argmax).

        Low-temperature sampling (§2.2): ``log f^tau ∝ log f / tau``.
        """
        logits = self.restrict(logits)
        if temperature <= 0:
            return logits.argmax(-1)
        # Inverse-CDF sampling: one uniform per position and a binary search.
        # ~10x faster than torch.multinomial over an 8k vocabulary on CPU,
        # where sampling dominated the cost of an L(1:2) update.
        cdf = F.softmax(logits / temperature, dim=-1).cumsum(-1)
        # u in (0, total]: a zero-probability symbol (forbidden) is never the
        # first index whose cumulative mass reaches u.
        u = (1.0 - torch.rand(cdf.shape[:-1] + (1,), device=cdf.device, generator=generator)) * cdf[..., -1:]
        return torch.searchsorted(cdf, u).squeeze(-1).clamp(max=cdf.size(-1) - 1)

    def initial_canvas(self, lengths, generator=None):
        """Uniform random tokens (special symbols excluded) on the canvas, the prior p0.

        Args:
            lengths: [N] nominal lengths from :meth:`predict_lengths`.
        Returns:
            (tokens [N, W] with ``<pad>`` beyond each canvas, length_d [N])
        """
        widths = self.canvas_widths(lengths)
        width = max(int(widths.max()), 1)
        tokens = uniform_random_tokens((lengths.numel(), width), self.noise_symbols, generator=generator,
                                       device=lengths.device)
        pos = torch.arange(width, device=lengths.device)[None, :]
        return tokens.masked_fill(pos >= widths[:, None], self.pad), self.length_classes(lengths)

    def cut_at_end(self, tokens):
        """Output lengths [N] (index of the first ``<eos>``, else the canvas
        width) and the canvas with everything from there on set to ``<eos>``."""
        in_canvas = tokens.ne(self.pad)
        is_end = tokens.eq(self.end) & in_canvas
        width = in_canvas.sum(1)
        pos = torch.arange(tokens.size(1), device=tokens.device)[None, :]
        first = torch.where(is_end, pos, torch.full_like(pos, tokens.size(1))).min(1).values
        lengths = torch.minimum(first, width)
        cleaned = tokens.masked_fill((pos >= lengths[:, None]) & in_canvas, self.end)
        return lengths, cleaned

    def model_score(self, tokens, encoder_out, length_d=None):
        """SUNDAE's rerank score (§3.1, App. E): the candidate fed back as input.

        Args:
            tokens: [N, W] final canvas (already cut at its first ``<eos>``).
        Returns:
            (positional log-probs [N, W] of ``tokens`` under
             ``f_theta(. | tokens)``, score [N] = their mean over the canvas,
             i.e. minus the cross-entropy)
        """
        logp = torch.log_softmax(self.restrict(self.canvas_logits(tokens, encoder_out, length_d)), -1)
        pos_logp = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        in_canvas = tokens.ne(self.pad)
        pos_logp = pos_logp.masked_fill(~in_canvas, 0.0)
        score = pos_logp.sum(1) / in_canvas.sum(1).clamp(min=1)
        return pos_logp, score


def sundae_architecture(args, **defaults):
    """SUNDAE defaults on top of :func:`nat_base_architecture`."""
    base = dict(sundae_no_length_prediction=False, sundae_canvas="fixed", sundae_max_canvas=128,
                sundae_length_hidden=128, sundae_length_blocks=6, length_loss_factor=1.0)
    for key in list(base):
        if key in defaults:
            base[key] = defaults.pop(key)
    for key, value in base.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    nat_base_architecture(args, **defaults)


@register_model_architecture("sundae", "sundae_base")
def sundae_base(args):
    """§3.1: 6+6 layers, 512 wide, 8 heads, FFN 2048, dropout 0.1; fixed canvas N = 128."""
    sundae_architecture(args, dropout=0.1)


@register_model_architecture("sundae", "sundae_small")
def sundae_small(args):
    """CPU-sized (REFERENCE §8): 2+2 layers, 128 wide, 4 heads, FFN 512.

    Canvas ``2 * ceil(l / 2)`` of the (gold / predicted) length and at most
    40 positions (covers > 99.9% of the quickstart targets), because a fixed
    canvas costs ~4x the decoder compute on such short sentences.
    """
    sundae_architecture(
        args, sundae_canvas="length", sundae_max_canvas=40,
        **SMALL_SIZE,
    )


@register_model_architecture("sundae", "sundae_tiny")
def sundae_tiny(args):
    """For tests: 1+1 layers, 32 wide, 2 residual blocks of 32 in the length predictor."""
    sundae_architecture(
        args, sundae_canvas="length", sundae_max_canvas=32, sundae_length_hidden=32, sundae_length_blocks=2,
        **TINY_SIZE,
    )
