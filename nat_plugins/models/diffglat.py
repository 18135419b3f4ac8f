"""Diffusion Glancing Transformer, DiffGLAT (Qian et al. 2023, "Diffusion Glancing Transformer for
Parallel Sequence-to-Sequence Learning"), on the plugin's DA-Transformer (§3.3).

Self-conditioned generative process (§3.2, eq. 10).  The decoder's layers are split
into groups of ``--layers-per-transition`` consecutive layers; each group is one
denoising transition ``H_t -> H_{t-1}``:

* ``H_T = emb(y_T)``: the DAT graph's canvas (``<s> <unk>... </s>``; all ``<unk>`` for
  checkpoints from before ``--dag-canvas``) embedded
  as every DAT input (:meth:`initial_states`);
* transition ``k`` (``k = 0 .. T-1`` in generation order) runs layer group
  ``k mod G`` on the previous transition's raw output (:meth:`transition`).
  **Hidden states, never tokens, pass between transitions and between
  iterations**: there is no intermediate token decoding;
* ``--diffusion-iterations I`` passes of the shared stack give ``T = I * G``
  transitions (``G = decoder layers / layers per transition``): iterative
  parameter sharing, §3.3 "Parameterization";
* every transition has an output distribution and its own graph
  (:meth:`transition_outputs`): token logits through the shared output projection
  (``softmax(H_{t-1} V^T)``) and links from the shared
  :class:`~nat_plugins.modules.dag_links.DAGLinks` module applied to that
  transition's features.  **Link parameters are shared across transitions**, as
  the layers are across iterations (our reading of §3.3 "Parameterization"; the
  paper gives no per-transition link module).

Decoding (§3.3, Appendix F): ``--decode-iterations`` passes of the stack (default:
the trained ``--diffusion-iterations``), then the last transition's DAG is decoded
by the DAG strategies (``dag_joint_viterbi`` when ``--decoding-strategy auto``, as
the paper does).  ``decoding_family`` stays ``"dat"``, so every DAG strategy works.
:meth:`dag_forward` is the whole process, so :meth:`DATModel.dag_graph` needs no
override.

Training (which level, targets, residual glancing) lives in the criterion
``diffglat_loss``.  Archs use ``lambda = 4`` (Appendix E: 4 for iterative models).
"""
import torch
from fairseq.models import register_model, register_model_architecture

from ..errors import NATUserError
from ..modules.nat_base import SMALL_SIZE, TINY_SIZE
from ..modules.noise import vocabulary_symbols
from .dat import DATModel, _dat_defaults

__all__ = ["DiffGLATModel"]


@register_model("diffglat")
class DiffGLATModel(DATModel):
    #: what ``--decoding-strategy auto`` picks (the paper decodes with joint-Viterbi)
    default_strategy = "dag_joint_viterbi"

    def __init__(self, args, encoder, decoder, src_dict=None, tgt_dict=None):
        super().__init__(args, encoder, decoder, src_dict, tgt_dict)
        layers, per = int(args.decoder_layers), int(args.layers_per_transition)
        if per < 1 or layers % per:
            raise NATUserError(f"--layers-per-transition {per} must divide the {layers} decoder layers")
        if int(args.diffusion_iterations) < 1:
            raise NATUserError(f"--diffusion-iterations {args.diffusion_iterations}: must be >= 1")
        self.layers_per_transition = per
        self.num_groups = layers // per
        self.diffusion_iterations = int(args.diffusion_iterations)
        #: passes of the stack at decoding; set by prepare_for_decoding
        self.decode_iterations = self.diffusion_iterations
        # D3PM-uniform noise vocabulary (the criterion's --diffusion-process uniform)
        self.register_buffer("noise_symbols", vocabulary_symbols(self.tgt_dict), persistent=False)

    @staticmethod
    def add_args(parser):
        DATModel.add_args(parser)
        parser.add_argument("--layers-per-transition", type=int, metavar="N",
                            help="consecutive decoder layers making one denoising transition (must divide the layers)")
        parser.add_argument("--diffusion-iterations", type=int, metavar="I",
                            help="passes of the shared decoder stack in training; T = I * layers / N transitions")

    @property
    def default_decode_iterations(self):
        """What ``--decode-iterations`` means when not given: the trained number of passes."""
        return self.diffusion_iterations

    # ---- the generative process ------------------------------------------------
    def num_transitions(self, iterations=None):
        """``T`` for ``iterations`` passes (default: ``--diffusion-iterations``)."""
        return (self.diffusion_iterations if iterations is None else int(iterations)) * self.num_groups

    def transition_layers(self, k):
        """``(start, end)`` decoder layers of transition ``k``: group ``k mod G``."""
        start = (k % self.num_groups) * self.layers_per_transition
        return start, start + self.layers_per_transition

    def initial_states(self, canvas):
        """``H_T = emb(canvas)``: ``([B, P, C], padding_mask [B, P] bool)``."""
        return self.decoder.embed(canvas)

    def transition(self, states, encoder_out, padding_mask, k):
        """Transition ``k``: ``H_t [B, P, C] -> H_{t-1} [B, P, C]`` (raw layer output)."""
        start, end = self.transition_layers(k)
        return self.decoder.run_layers(states, encoder_out, padding_mask, start, end)

    def run_transitions(self, states, encoder_out, padding_mask, start, end):
        """Transitions ``start .. end - 1`` in order, each on the previous one's output."""
        for k in range(start, end):
            states = self.transition(states, encoder_out, padding_mask, k)
        return states

    def token_logits(self, states):
        """``[B, P, V]`` token logits of a transition's output states."""
        return self.decoder.output_layer(self.decoder.finalize(states))

    def transition_outputs(self, states, graph_lengths):
        """A transition's DAG: ``(token_logits [B, P, V], links [B, P, P] fp32)``."""
        features = self.decoder.finalize(states)
        return self.decoder.output_layer(features), self.links(features, graph_lengths)

    def glanced_states(self, states, tokens, glanced):
        """Layer-wise glancing (§3.2): ``states [B, P, C]`` with the decoder input embedding
        (:meth:`NATDecoder.embed`: scaled token embedding + position) of ``tokens [B, P]``
        at the ``glanced [B, P]`` vertices.

        The embedding is computed even when nothing is glanced, so a no-grad pass and
        the gradient pass draw the same dropout masks for the transition that follows.
        """
        embedded, _ = self.decoder.embed(tokens)
        return torch.where(glanced.unsqueeze(-1), embedded.to(states.dtype), states)

    def dag_forward(self, encoder_out, canvas):
        """The whole process on ``canvas [B, P]``: the last transition's
        ``(token_logits [B, P, V], links [B, P, P])`` after ``--diffusion-iterations``
        passes in training, ``decode_iterations`` passes in eval mode."""
        iterations = self.diffusion_iterations if self.training else self.decode_iterations
        states, padding_mask = self.initial_states(canvas)
        states = self.run_transitions(states, encoder_out, padding_mask, 0, self.num_transitions(iterations))
        return self.transition_outputs(states, canvas.ne(self.pad).sum(1))

    # ---- decoding ---------------------------------------------------------------
    def prepare_for_decoding(self, options):
        """DAT's checks, plus ``--decode-iterations`` = passes of the stack (``None``: as trained)."""
        super().prepare_for_decoding(options)
        iterations = self.diffusion_iterations if options.iterations is None else int(options.iterations)
        if iterations < 1:
            raise NATUserError(f"--decode-iterations {iterations}: DiffGLAT needs at least one pass of the decoder")
        self.decode_iterations = iterations


def _diffglat_defaults(args, layers_per_transition, **sizes):
    _dat_defaults(args, upsample_scale="4", **sizes)
    if getattr(args, "layers_per_transition", None) is None:
        args.layers_per_transition = layers_per_transition
    if getattr(args, "diffusion_iterations", None) is None:
        args.diffusion_iterations = 3


@register_model_architecture("diffglat", "diffglat_base")
def diffglat_base(args):
    """The paper's model: 6+6 layers, 512 wide, 8 heads, lambda = 4, 3 layers per
    transition (2 transitions per pass), 3 training iterations (§4.1, Appendix E-F)."""
    _diffglat_defaults(args, layers_per_transition=3)


@register_model_architecture("diffglat", "diffglat_small")
def diffglat_small(args):
    """CPU-sized: 2+2 layers, 128 wide, 4 heads, lambda = 4, 1 layer per transition
    (2 transitions per pass; Appendix F finds 1 layer per transition weaker, a CPU-size compromise)."""
    _diffglat_defaults(args, layers_per_transition=1, **SMALL_SIZE)


@register_model_architecture("diffglat", "diffglat_tiny")
def diffglat_tiny(args):
    """For tests: 1+2 layers, 32 wide, 2 heads, lambda = 4, 1 layer per transition."""
    _diffglat_defaults(args, layers_per_transition=1, **dict(TINY_SIZE, decoder_layers=2))
