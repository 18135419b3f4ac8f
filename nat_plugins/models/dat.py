"""Directed Acyclic Transformer (Huang et al., ICML 2022, "Directed Acyclic Transformer for
Non-Autoregressive Machine Translation").

The decoder runs on a graph of ``P_b`` vertices (§2.1, ``--upsample-scale`` lambda,
default 8).  Per vertex the model gives

* a token distribution ``log P(y | v_j)`` (the usual output layer, ``[B, P, V]``);
* transition log-probabilities to every later vertex, ``links [B, P, P]``
  (:class:`~nat_plugins.modules.dag_links.DAGLinks`).

A translation is a path through the graph; the loss (``dag_loss``) marginalises
over paths with :func:`nat_plugins.ops.dag_log_likelihood`, decoding
(:mod:`nat_plugins.decoding.dag_decoding`) picks one path.  There is no length
predictor: :meth:`DATModel.predict_lengths` returns the graph size ``P_b`` and
the strategies decide the length.

The reference recipe (DA-Transformer's released code; REFERENCE §9) and ours
--------------------------------------------------------------------------------
The paper leaves three details to its code.  New trainings follow the code; a
checkpoint whose saved arguments lack an attribute was trained before it existed
and keeps its old ("legacy") behaviour, so it decodes exactly as before.  The new
values are argparse defaults of ``fairseq-train`` (never filled in by the arch
functions, which fairseq also runs when it loads a checkpoint).

* ``--dag-frame-target`` (default on; legacy off): paths emit ``<s> y </s>``, as
  the reference task prepends ``<s>`` to every target.  The first vertex of every
  path emits ``<s>``, the last ``</s>``; decoding drops both
  (:meth:`DATModel.dag_target`, :class:`~nat_plugins.decoding.dag_decoding.DAGStrategy`).
  Without it the two vertices every path shares carry the first and last content
  tokens, so a multimodal first or last token cannot follow the path's modality.
* ``--dag-graph-size source+eos`` (default; legacy ``source``): ``P_b =
  int(lambda * (|x_b| + 1))`` counts the source's ``</s>`` and truncates, as the
  reference does; legacy is ``round(lambda * |x_b|)`` over real tokens only.  The
  difference matters when a graph must hold several separate modality paths: 4
  paths of 32 tokens plus the shared frame need 4*32+2 = 130 vertices, which
  ``round(4*32)`` = 128 cannot hold and ``int(4*33)`` = 132 can.
* ``--dag-canvas framed`` (default; legacy ``unk``): decoder inputs are ``<s> <unk>
  ... <unk> </s>`` (the reference's), not ``<unk>`` everywhere; positions are added
  to every vertex either way.  There is no soft copy of the source embeddings.
* The ``dat_*`` and ``diffglat_*`` archs use learned decoder positions
  (``--decoder-learned-pos``), as the reference recipe does.  Checkpoints saved
  before this change stored ``decoder_learned_pos=False`` and keep it.

``--upsample-scale`` accepts a range ``A~B``: each training batch samples
``lambda ~ U[A, B]`` once; evaluation and decoding use ``--decode-upsample-scale``
(default ``B``), which must lie in ``[A, B]`` (a fixed scale must be matched).

Graph capacity: the decoder positions and the link-position table hold
``ceil(B * max_source_positions)`` vertices.  ``|x| + 1 <= max_source_positions``
(the source ``</s>`` is a position), so every source the model accepts fits.

Simplifications (named): full ``[B, P, P]`` links, no banded max transition
length; no soft-copied source embeddings; no BERT-style initialisation
(the reference recipe's ``--apply-bert-init``).
"""
import argparse
import copy
import math

import torch
from fairseq.models import register_model, register_model_architecture

from ..errors import NATUserError
from ..modules.dag_links import DAGLinks
from ..modules.nat_base import SMALL_SIZE, TINY_SIZE, NATModelBase, nat_base_architecture

__all__ = ["DATModel", "parse_upsample_scale"]


#: ``--dag-graph-size`` values; the first is the reference recipe's.
GRAPH_SIZE_RULES = ("source+eos", "source")
#: ``--dag-canvas`` values; the first is the reference recipe's.
CANVAS_STYLES = ("framed", "unk")


def _on_off(text):
    """argparse type of an on/off flag: ``on|off|true|false|1|0|yes|no``."""
    value = str(text).strip().lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


def parse_upsample_scale(spec):
    """``"8"`` -> ``(8.0, 8.0)``; ``"4~8"`` -> ``(4.0, 8.0)``.  Scales must be ``>= 1``."""
    text = str(spec).strip()
    parts = text.split("~")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1 or values[0] > values[-1]:
        raise NATUserError(f"--upsample-scale {spec!r}: expected a number >= 1 or a range like 4~8")
    return values[0], values[-1]


@register_model("dat")
class DATModel(NATModelBase):
    decoding_family = "dat"

    def __init__(self, args, encoder, decoder, src_dict=None, tgt_dict=None):
        super().__init__(args, encoder, decoder, src_dict, tgt_dict)
        self.upsample_range = parse_upsample_scale(args.upsample_scale)
        self.links = DAGLinks(args.decoder_embed_dim, args.dag_link_heads, decoder.max_positions())
        #: scale used in eval mode (validation loss, decoding); see prepare_for_decoding
        self.decode_upsample_scale = self.upsample_range[1]
        #: set every update by fairseq (FairseqTask.train_step) and on checkpoint load
        self.num_updates = 0
        # A missing attribute means a checkpoint saved before the option existed: legacy behaviour.
        self.frame_target = bool(getattr(args, "dag_frame_target", False))
        self.graph_size_rule = getattr(args, "dag_graph_size", None) or "source"
        self.canvas_style = getattr(args, "dag_canvas", None) or "unk"

    # ---- construction ---------------------------------------------------
    @staticmethod
    def add_args(parser):
        NATModelBase.add_args(parser)
        parser.add_argument("--upsample-scale", type=str, metavar="L",
                            help="graph size P = L * source length; a range A~B samples L per training batch")
        parser.add_argument("--dag-link-heads", type=int, metavar="H",
                            help="heads of the link (transition) projections (default: decoder heads)")
        parser.add_argument("--dag-frame-target", type=_on_off, nargs="?", const=True, default=True,
                            metavar="on|off",
                            help="paths emit <s> y </s> (DA-Transformer's targets): the shared first and last "
                                 "vertices carry the frame, not content (default: on; 'off' trains on y alone)")
        parser.add_argument("--dag-graph-size", choices=GRAPH_SIZE_RULES, default="source+eos",
                            help="graph size: 'source+eos' = int(L * (|x|+1)) as DA-Transformer's code (default); "
                                 "'source' = round(L * |x|), the rule of checkpoints trained before this option")
        parser.add_argument("--dag-canvas", choices=CANVAS_STYLES, default="framed",
                            help="decoder inputs: 'framed' = <s> <unk>... </s> as DA-Transformer's code (default); "
                                 "'unk' = <unk> at every vertex, the input of checkpoints trained before this option")

    @classmethod
    def build_length_predictor(cls, args):
        return None  # the graph size is fixed by the source length (§2.1)

    @classmethod
    def build_decoder(cls, args, tgt_dict, embed_tokens):
        # The decoder's positions index graph vertices, not target tokens.
        dargs = copy.copy(args)
        dargs.max_target_positions = graph_capacity(args)
        return super().build_decoder(dargs, tgt_dict, embed_tokens)

    def set_num_updates(self, num_updates):
        self.num_updates = int(num_updates)
        super().set_num_updates(num_updates)

    # ---- targets --------------------------------------------------------------
    def dag_target(self, target):
        """The token sequence a path must emit, from a fairseq target ``[y, </s>, <pad>...]``.

        Args:
            target: ``[B, L]`` long.
        Returns:
            ``(tokens [B, W] long (pad after the end), lengths [B] long, content [B, W] bool)``:
            ``y`` alone, or ``<s> y </s>`` with ``--dag-frame-target``; ``content`` marks the
            tokens of ``y`` (never the frame).
        """
        real = self.real_target_mask(target)
        lengths = real.sum(1)
        width = max(int(lengths.max()), 1) if lengths.numel() else 1
        # Real tokens are contiguous at the start of fairseq targets.
        tokens = target.masked_fill(~real, self.pad)[:, :width]
        content = real[:, :width]
        if not self.frame_target:
            return tokens, lengths, content
        B = tokens.size(0)
        framed = tokens.new_full((B, width + 2), self.pad)
        framed[:, 0] = self.bos
        framed[:, 1:width + 1] = tokens
        framed.scatter_(1, (lengths + 1)[:, None], self.eos)
        framed_content = torch.cat([content.new_zeros(B, 1), content, content.new_zeros(B, 1)], 1)
        return framed, lengths + 2, framed_content

    # ---- graph ----------------------------------------------------------------
    def upsample_scale(self):
        """lambda for this batch: sampled from the range in training, else the decoding scale."""
        lo, hi = self.upsample_range
        if not self.training:
            return self.decode_upsample_scale
        return lo + (hi - lo) * float(torch.rand(())) if hi > lo else hi

    def graph_lengths(self, src_tokens, scale):
        """``[B]`` long graph sizes ``P_b`` for ``src_tokens [B, S]``.

        ``int(scale * (|x_b| + 1))`` (``--dag-graph-size source+eos``, the reference's:
        the source ``</s>`` counts, and the product is truncated) or ``round(scale * |x_b|)``
        (legacy ``source``); ``|x_b|`` counts real source tokens.  An empty source gets 0
        under the legacy rule.
        """
        n = self.source_lengths(src_tokens).double()
        if self.graph_size_rule == "source+eos":
            # a small epsilon keeps e.g. 4.0 * 33 from truncating to 131 through rounding error
            return torch.floor((n + 1) * scale + 1e-9).long()
        return torch.round(n * scale).long()

    def graph_canvas(self, graph_lengths):
        """Position-only decoder input ``[B, max(P_b, 1)]``, ``<pad>`` beyond ``P_b``.

        ``<s> <unk> ... <unk> </s>`` (``--dag-canvas framed``; a 1-vertex graph holds
        ``<s>`` only) or ``<unk>`` everywhere (legacy ``unk``).
        """
        width = max(int(graph_lengths.max()), 1) if graph_lengths.numel() else 1
        positions = torch.arange(width, device=graph_lengths.device)[None, :]
        canvas = torch.full((graph_lengths.numel(), width), self.unk, dtype=torch.long, device=graph_lengths.device)
        if self.canvas_style == "framed":
            last = (graph_lengths - 1).clamp(min=0)[:, None]
            canvas = canvas.masked_fill(positions == last, self.eos).masked_fill(positions == 0, self.bos)
        return canvas.masked_fill(positions >= graph_lengths[:, None], self.pad)

    def dag_forward(self, encoder_out, canvas):
        """One decoder pass over the graph.

        Args:
            encoder_out: fairseq encoder output for ``B`` rows.
            canvas: ``[B, P]`` decoder input (``<unk>``, glanced tokens, ``<pad>``).
        Returns:
            ``(token_logits [B, P, V], links [B, P, P] fp32 log-probs)``.
        """
        features = self.decoder.features(canvas, encoder_out)
        lengths = canvas.ne(self.pad).sum(1)
        return self.decoder.output_layer(features), self.links(features, lengths)

    def forward(self, src_tokens, src_lengths, prev_output_tokens=None, **kwargs):
        """``(token_logits [B, P, V], links [B, P, P], graph_lengths [B])`` on a position-only graph."""
        encoder_out = self.encode(src_tokens, src_lengths)
        lengths = self.graph_lengths(src_tokens, self.upsample_scale())
        logits, links = self.dag_forward(encoder_out, self.graph_canvas(lengths))
        return logits, links, lengths

    # ---- decoding -----------------------------------------------------------------
    def prepare_for_decoding(self, options):
        """Check and apply the decoding options (called by the task's ``build_generator``)."""
        scale = options.extra.get("decode_upsample_scale")
        lo, hi = self.upsample_range
        trained = f"{lo:g}" if lo == hi else f"{lo:g}~{hi:g}"
        if scale is not None:
            if not lo - 1e-6 <= float(scale) <= hi + 1e-6:
                allowed = f"{lo:g}" if lo == hi else f"a value in [{lo:g}, {hi:g}]"
                raise NATUserError(
                    f"--decode-upsample-scale {scale:g} does not match the scale this model was trained with "
                    f"(--upsample-scale {trained}); use {allowed}")
            self.decode_upsample_scale = float(scale)
        else:
            self.decode_upsample_scale = hi
        if options.length_beam != 1:
            raise NATUserError("--length-beam does not apply to DA-Transformer (the graph size is fixed by the source; "
                               "use --decode-samples with a sampling strategy for several candidates)")

    def predict_lengths(self, encoder_out, src_tokens, k=1):
        """Graph sizes as the single "length" candidate: ``([B, 1] long, [B, 1] zeros)``."""
        if k != 1:
            raise NATUserError("--length-beam does not apply to DA-Transformer")
        lengths = self.graph_lengths(src_tokens, self.decode_upsample_scale).clamp(min=1)
        return lengths[:, None], torch.zeros(lengths.size(0), 1, device=lengths.device)

    def dag_graph(self, encoder_out, graph_lengths):
        """The DAG for decoding: ``(token_logprobs [N, P, V] fp32, links [N, P, P] fp32)``."""
        logits, links = self.dag_forward(encoder_out, self.graph_canvas(graph_lengths))
        return torch.log_softmax(logits.float(), dim=-1), links


def graph_capacity(args):
    """Vertices the decoder must index: ``ceil(max scale * max_source_positions)``."""
    return int(math.ceil(parse_upsample_scale(args.upsample_scale)[1] * args.max_source_positions))


def _dat_defaults(args, upsample_scale="8", **sizes):
    # decoder_learned_pos: the reference recipe's; nat_base_architecture saves the value in every
    # checkpoint, so checkpoints trained with sinusoidal positions keep them.
    nat_base_architecture(args, upsample_scale=upsample_scale, decoder_learned_pos=True, **sizes)
    if getattr(args, "dag_link_heads", None) is None:
        args.dag_link_heads = args.decoder_attention_heads


@register_model_architecture("dat", "dat_base")
def dat_base(args):
    """The paper's base model: 6+6 layers, 512 wide, 8 heads, FFN 2048, lambda = 8."""
    _dat_defaults(args)


@register_model_architecture("dat", "dat_small")
def dat_small(args):
    """CPU-sized: 2+2 layers, 128 wide, 4 heads, FFN 512 (the quickstart size)."""
    _dat_defaults(args, **SMALL_SIZE)


@register_model_architecture("dat", "dat_tiny")
def dat_tiny(args):
    """For tests: 1+1 layers, 32 wide, 2 heads, lambda = 4."""
    _dat_defaults(args, **TINY_SIZE, upsample_scale="4")
