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

Read-out (``--sundae-read-out``, our reading of the paper's padding):
the paper's padding is a symbol that carries no text (App. J's sequences
are fixed-length arrays; a padding id decodes to nothing wherever it
stands), and nothing in the paper gives a mid-sequence padding token the
meaning "the text ends here".  So the output is the canvas with every
``<eos>`` position dropped (``drop-end``, the default); the remaining
tokens keep their order.  ``cut-at-end`` (earlier versions) cuts at the
first ``<eos>``; on wide canvases, where ``<eos>`` fills most positions of
the gold canvases, an early model then often outputs nothing.

Canvas width (``--sundae-canvas``):

* ``fixed``: every canvas has ``--sundae-max-canvas`` positions (the
  paper's N = 128; the length embedding is then only a hint);
* ``length``: the canvas has ``2 * ceil(l / 2)`` positions for the gold
  (training) or predicted (decoding) downsampled length ``ceil(l / 2)``,
  plus a slack of ``ceil(s * 2 * ceil(l / 2))`` end positions
  (``--sundae-canvas-slack s``, default 0.25; the maximum canvas still caps it).
  Much cheaper on CPU than a fixed canvas; the slack keeps the paper's
  point that the model "does not need to fully commit to the predicted
  length" (§3.1): end padding is always part of the training canvas, and
  at decoding the output may grow past the predicted length.

Without length prediction (``--sundae-no-length-prediction``, the App. C
ablation) the canvas is always fixed and no length embedding is used.

Prior and corruption vocabulary (``--sundae-noise-symbols``): the paper
draws the prior p0 and the corruption noise uniformly from the whole
vocabulary ``{1, ..., v}`` (§2, App. A.3, App. J ``get_random_text``).
``all`` (the default) is every symbol of the target dictionary except
``<pad>`` (not a canvas input, see above) and ``<bos>`` (never part of a
target canvas); ``<eos>``, ``<unk>`` and fairseq's ``madeupword`` fillers
are included.  Samples take values in the same set.  ``ordinary``
(earlier versions) also leaves out ``<eos>``, ``<unk>`` and the fillers.

Target length (App. B): :class:`~nat_plugins.modules.sundae_length_predictor.SundaeLengthPredictor`
on detached encodings predicts ``l_d = ceil(l / 2)``; the embedding of
``l_d`` (gold in training, predicted in decoding) is prepended to the encoder
output as one extra, never-masked source position that the decoder attends
to.  Targets longer than the maximum canvas are cropped, as the paper crops
sequences over 128 tokens.

Decoding defaults (§3.1 "Decoding": low-temperature sampling with
``tau`` in [0.1, 0.6] chosen on validation data, ``T <= 16``, and ``n``
samples decoded in parallel and reranked by the model score; n = 16 in
Table 1): :attr:`SUNDAEModel.default_decode_temperature` (0.5) and
:attr:`~SUNDAEModel.default_decode_samples` (16 for ``sundae_base``, 4 for
the CPU archs) fill ``--decode-temperature``/``--decode-samples`` of
``fairseq-generate`` when they are not given; ``--decode-iterations``
keeps the task default 10 (the paper's stochastic T = 10).  tau = 0.5: the
paper does not say which value of its range it used; Fig. 5 shows the lowest
temperatures converging to worse model scores, and 0.5 is what this
project's quickstart runs used.

Checkpoints of earlier versions lack the model options above; loading one
restores the behaviour it was trained and decoded with (no slack,
``ordinary`` noise symbols, ``cut-at-end``, tau = 1 and n = 1 by default),
see :func:`sundae_architecture`.

The base class's ``--length-classes``/``--pred-length-offset``/
``--sg-length-pred`` flags configure the classic predictor and are not used
by SUNDAE.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.models import register_model, register_model_architecture

from ..modules.nat_base import SMALL_SIZE, TINY_SIZE, NATModelBase, nat_base_architecture
from ..errors import NATUserError
from ..modules.noise import uniform_random_tokens, vocabulary_symbols
from ..modules.sundae_length_predictor import SundaeLengthPredictor, downsample_length

__all__ = ["SUNDAEModel"]

#: Rows of [rows, V] vocabulary work per chunk are sized to about this many
#: elements, so per-position sampling / logsumexp never holds a second
#: [N, W, V] tensor next to the logits (issue #20).
_CHUNK_ELEMENTS = 1 << 20


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
        parser.add_argument("--sundae-canvas-slack", type=float, metavar="S",
                            help="'length' canvas: ceil(S * 2*ceil(l/2)) extra end positions so the model need not "
                                 "commit to the length (§3.1); default 0.25")
        parser.add_argument("--sundae-noise-symbols", choices=["all", "ordinary"], default=None,
                            help="prior/corruption/sample vocabulary: all symbols but <pad> and <bos> (A.3, App. J; "
                                 "default) or, as earlier versions, no special or filler symbols")
        parser.add_argument("--sundae-read-out", choices=["drop-end", "cut-at-end"], default=None,
                            help="output = the canvas without its <eos> (end padding) positions (default), or cut "
                                 "at the first <eos> (earlier versions)")
        parser.add_argument("--sundae-decode-samples", type=int, metavar="N",
                            help="default --decode-samples of fairseq-generate for this model (§3.1: n = 16; "
                                 "sundae_base 16, CPU archs 4)")
        parser.add_argument("--sundae-decode-temperature", type=float, metavar="TAU",
                            help="default --decode-temperature of fairseq-generate for this model (§3.1: tau in "
                                 "[0.1, 0.6]; 0.5)")

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
        self.canvas_slack = float(args.sundae_canvas_slack)
        if self.canvas_slack < 0:
            raise NATUserError(f"--sundae-canvas-slack must be >= 0, got {self.canvas_slack}")
        self.read_out_rule = args.sundae_read_out
        self.default_decode_samples = int(args.sundae_decode_samples)
        self.default_decode_temperature = float(args.sundae_decode_temperature)
        if self.default_decode_samples < 1 or not self.default_decode_temperature >= 0:
            raise NATUserError("--sundae-decode-samples must be >= 1 and --sundae-decode-temperature >= 0")
        if self.use_length:
            # h_len = V[l_d], V of size N_d x d_enc (App. B).  Unit-variance
            # init: comparable in scale to the layer-normed encoder states.
            self.length_embed = nn.Embedding(self.num_length_classes, args.encoder_embed_dim)
            nn.init.normal_(self.length_embed.weight, std=1.0)
        noise, forbidden = self._canvas_vocabulary(args.sundae_noise_symbols)
        # Prior p0 and corruption noise (module docstring).
        self.register_buffer("noise_symbols", noise, persistent=False)
        # Symbols a sample may never take.
        self.register_buffer("output_forbidden", forbidden, persistent=False)

    def _canvas_vocabulary(self, rule):
        """(noise symbols [S] long, forbidden output symbols [V] bool) for ``--sundae-noise-symbols``.

        ``all`` (A.3, App. J): noise = samples = every symbol but ``<pad>``
        and ``<bos>``.  ``ordinary`` (earlier versions): noise leaves out
        every special symbol and ``madeupword`` filler; samples may also be
        ``<eos>`` and ``<unk>`` (targets hold both).
        """
        forbidden = torch.zeros(len(self.tgt_dict), dtype=torch.bool)
        forbidden[[self.pad, self.bos]] = True
        if rule == "all":
            return (~forbidden).nonzero().squeeze(1), forbidden
        noise = vocabulary_symbols(self.tgt_dict)
        forbidden = torch.ones_like(forbidden)
        forbidden[noise] = False
        forbidden[[self.end, self.unk]] = False
        return noise, forbidden

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
        """Canvas width [N] for nominal lengths [N] (gold ``l`` or predicted ``2 l_d``).

        ``length`` canvas: ``2 l_d + ceil(slack * 2 l_d)`` (module docstring),
        at least 2 and at most the maximum canvas.
        """
        if self.fixed_canvas:
            return torch.full_like(lengths, self.max_canvas)
        base = 2 * downsample_length(lengths)
        if self.canvas_slack > 0:
            base = base + torch.ceil(base.double() * self.canvas_slack).long()
        return base.clamp(2, self.max_canvas)

    def length_classes(self, lengths):
        """``l_d = ceil(l / 2)`` [N] (at least 1) of nominal lengths [N]."""
        return downsample_length(lengths.clamp(max=self.max_canvas)).clamp(1, self.num_length_classes - 1)

    def width_classes(self, widths):
        """The largest ``l_d`` [N] whose ``length`` canvas fits in ``widths`` [N] (inverse of :meth:`canvas_widths`)."""
        classes = torch.arange(self.num_length_classes, device=widths.device)
        table = self.canvas_widths(2 * classes)  # non-decreasing in l_d
        fits = (table[None, :] <= widths[:, None]).sum(1) - 1
        return fits.clamp(1, self.num_length_classes - 1)

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
        to the largest class whose ``length`` canvas fits the width."""
        encoder_out = self.encode(src_tokens, src_lengths)
        if length_d is None and self.use_length:
            length_d = self.width_classes(prev_output_tokens.ne(self.pad).sum(1))
        return self.canvas_logits(prev_output_tokens, encoder_out, length_d)

    # ---- sampling -------------------------------------------------------------
    def restrict(self, logits):
        """fp32 logits with symbols that are never canvas tokens set to -inf."""
        return logits.float().masked_fill(self.output_forbidden, float("-inf"))

    def pick_tokens(self, logits, temperature=1.0, generator=None):
        """Sample (or, at ``temperature <= 0``, argmax) one token per position.

        Low-temperature sampling (§2.2): ``log f^tau ∝ log f / tau``, by the
        inverse CDF: one uniform per position and a binary search (~10x
        faster than ``torch.multinomial`` over an 8k vocabulary on CPU).
        The vocabulary work runs on chunks of positions, so no [N, W, V]
        softmax, cumsum or log-softmax is ever held (issue #20); results are
        bit-identical to the whole-tensor computation for the same generator.

        Args:
            logits: [N, W, V] decoder logits (not modified).
        Returns:
            (tokens [N, W] long, logp [N, W] = ``log f(token)`` at temperature 1)
        """
        shape, vocab = logits.shape[:-1], logits.size(-1)
        flat = logits.reshape(-1, vocab)
        u = None
        if temperature > 0:
            # u in (0, 1]: scaled by the total mass, a zero-probability symbol
            # (forbidden) is never the first index whose cumulative mass reaches it.
            u = (1.0 - torch.rand(shape + (1,), device=logits.device, generator=generator)).reshape(-1, 1)
        tokens = torch.empty(flat.size(0), dtype=torch.long, device=logits.device)
        logp = torch.empty(flat.size(0), dtype=torch.float, device=logits.device)
        for part in self._row_chunks(flat):
            x = self.restrict(flat[part])
            if u is None:
                tok = x.argmax(-1, keepdim=True)
            else:
                cdf = F.softmax(x / temperature, dim=-1).cumsum_(-1)
                tok = torch.searchsorted(cdf, u[part] * cdf[:, -1:]).clamp_(max=vocab - 1)
                del cdf
            tokens[part] = tok.squeeze(-1)
            logp[part] = torch.log_softmax(x, -1).gather(-1, tok).squeeze(-1)
        return tokens.view(shape), logp.view(shape)

    def sample(self, logits, temperature=1.0, generator=None):
        """Tokens [N, W] of :meth:`pick_tokens` (``logits`` [N, W, V]; 0: argmax)."""
        return self.pick_tokens(logits, temperature, generator)[0]

    def token_logp(self, logits, tokens):
        """``log f(tokens)`` [N, W] under the restricted ``logits`` [N, W, V]
        (-inf for symbols a canvas never holds), chunked like :meth:`pick_tokens`."""
        flat, idx = logits.reshape(-1, logits.size(-1)), tokens.reshape(-1, 1)
        logp = torch.empty(idx.size(0), dtype=torch.float, device=logits.device)
        for part in self._row_chunks(flat):
            logp[part] = torch.log_softmax(self.restrict(flat[part]), -1).gather(-1, idx[part]).squeeze(-1)
        return logp.view(tokens.shape)

    @staticmethod
    def _row_chunks(flat):
        """Slices of the rows of ``flat`` [R, V], about ``_CHUNK_ELEMENTS`` elements each."""
        rows = max(1, _CHUNK_ELEMENTS // max(flat.size(-1), 1))
        return [slice(start, start + rows) for start in range(0, flat.size(0), rows)]

    def initial_canvas(self, lengths, generator=None):
        """Uniform random tokens from :attr:`noise_symbols` on the canvas, the prior p0 (§2, §3.1).

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

    def read_out(self, tokens):
        """The translation in a final canvas, by ``--sundae-read-out`` (module docstring).

        Args:
            tokens: [N, W] canvas (``<pad>`` beyond each row's width).
        Returns:
            (lengths [N], cleaned [N, W]: the output tokens first, then
             ``<eos>`` up to the row's width, then ``<pad>``; the canvas a
             gold target of that output would have)
        """
        if self.read_out_rule == "cut-at-end":
            return self.cut_at_end(tokens)
        return self.drop_end(tokens)

    def drop_end(self, tokens):
        """``drop-end`` read-out: every non-``<eos>`` canvas token, in order (see :meth:`read_out`)."""
        in_canvas = tokens.ne(self.pad)
        keep = in_canvas & tokens.ne(self.end)
        width = tokens.size(1)
        pos = torch.arange(width, device=tokens.device)[None, :]
        # Kept positions first, each group in canvas order (all keys distinct).
        order = torch.where(keep, pos, pos + width).argsort(1)
        lengths = keep.sum(1)
        cleaned = torch.where(pos < lengths[:, None], tokens.gather(1, order), torch.full_like(tokens, self.end))
        return lengths, cleaned.masked_fill(~in_canvas, self.pad)

    def cut_at_end(self, tokens):
        """``cut-at-end`` read-out: lengths [N] (index of the first ``<eos>``, else
        the canvas width) and the canvas with everything from there on ``<eos>``."""
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
            tokens: [N, W] final canvas (already cleaned by :meth:`read_out`).
        Returns:
            (positional log-probs [N, W] of ``tokens`` under
             ``f_theta(. | tokens)``, score [N] = their mean over the canvas,
             i.e. minus the cross-entropy)
        """
        pos_logp = self.token_logp(self.canvas_logits(tokens, encoder_out, length_d), tokens)
        in_canvas = tokens.ne(self.pad)
        pos_logp = pos_logp.masked_fill(~in_canvas, 0.0)
        score = pos_logp.sum(1) / in_canvas.sum(1).clamp(min=1)
        return pos_logp, score


#: Options every SUNDAE config held before the canvas slack, noise symbols,
#: read-out and decoding defaults existed.
_EARLIER_OPTIONS = ("sundae_no_length_prediction", "sundae_canvas", "sundae_max_canvas", "sundae_length_hidden",
                    "sundae_length_blocks")
#: What a model of an earlier version did without those options.
_EARLIER_BEHAVIOUR = dict(sundae_canvas_slack=0.0, sundae_noise_symbols="ordinary", sundae_read_out="cut-at-end",
                          sundae_decode_samples=1, sundae_decode_temperature=1.0)


def sundae_architecture(args, **defaults):
    """SUNDAE defaults on top of :func:`nat_base_architecture`.

    fairseq re-runs the architecture function on a checkpoint's saved
    config when it loads it.  A config that holds every earlier option but
    none of the newer ones (:data:`_EARLIER_BEHAVIOUR`) was saved by an
    earlier version: it gets the behaviour it was trained and decoded with,
    not the new defaults.  (Fresh configs either hold the newer options as
    ``None``, from the command line, or lack the earlier ones too.)
    """
    if all(key in args for key in _EARLIER_OPTIONS) and not any(key in args for key in _EARLIER_BEHAVIOUR):
        for key, value in _EARLIER_BEHAVIOUR.items():
            setattr(args, key, value)
    base = dict(sundae_no_length_prediction=False, sundae_canvas="fixed", sundae_max_canvas=128,
                sundae_length_hidden=128, sundae_length_blocks=6, length_loss_factor=1.0,
                sundae_canvas_slack=0.25, sundae_noise_symbols="all", sundae_read_out="drop-end",
                sundae_decode_samples=16, sundae_decode_temperature=0.5)
    for key in list(base):
        if key in defaults:
            base[key] = defaults.pop(key)
    for key, value in base.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    nat_base_architecture(args, **defaults)


@register_model_architecture("sundae", "sundae_base")
def sundae_base(args):
    """§3.1: 6+6 layers, 512 wide, 8 heads, FFN 2048, dropout 0.1; fixed canvas N = 128; n = 16 samples."""
    sundae_architecture(args, dropout=0.1)


@register_model_architecture("sundae", "sundae_small")
def sundae_small(args):
    """CPU-sized (REFERENCE §8): 2+2 layers, 128 wide, 4 heads, FFN 512.

    Canvas ``2 * ceil(l / 2)`` of the (gold / predicted) length plus 25%
    slack and at most 40 positions (covers > 99.9% of the quickstart
    targets), because a fixed canvas costs ~4x the decoder compute on such
    short sentences.  n = 4 samples by default (a quarter of the paper's
    16: decoding cost grows linearly with n on CPU).
    """
    sundae_architecture(
        args, sundae_canvas="length", sundae_max_canvas=40, sundae_decode_samples=4,
        **SMALL_SIZE,
    )


@register_model_architecture("sundae", "sundae_tiny")
def sundae_tiny(args):
    """For tests: 1+1 layers, 32 wide, 2 residual blocks of 32 in the length predictor; n = 4 as sundae_small."""
    sundae_architecture(
        args, sundae_canvas="length", sundae_max_canvas=32, sundae_length_hidden=32, sundae_length_blocks=2,
        sundae_decode_samples=4, **TINY_SIZE,
    )
