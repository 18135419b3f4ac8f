"""DiffGLAT training loss (Qian et al. 2023, §3.1-3.3, Appendix E) on DA-Transformer graphs.

One training step (§3.3 "Training": one diffusion timestep per step):

1. sample a level ``t ~ U{1..T}`` (torch's global RNG, which fairseq reseeds from
   ``--seed`` and the update number every step); the transition trained is
   ``k = T - t`` (:func:`~nat_plugins.modules.modality_diffusion.transition_of_level`);
2. **the process up to level t**: transitions ``0 .. k-1`` give ``H_t`` and the previous
   output ``^y_t`` (argmax of transition ``k-1``; the ``<unk>`` canvas when ``k = 0``).
   ``H_t`` keeps its autograd graph, so the loss of transition ``k`` also trains the
   transitions that computed its input (§3.2: ``H_t`` "is consistent in both training
   and inference"; the paper samples *which loss* to compute, §3.3 "Training", and
   says nothing of cutting the gradient).  ``--diffusion-detach-inputs`` computes
   ``H_t`` without gradient instead (cheaper: only transition ``k`` is trained per
   step).  Only hidden states and ``[B, P]`` argmaxes are kept, never a ``[B, P, V]``
   tensor per transition.  Then, without gradient and inside
   ``torch.random.fork_rng`` (so the gradient pass redraws the same dropout masks, as
   ``dag_loss`` does), transition ``k`` and, when the process needs it, transition
   ``k+1``;
3. the **intermediate target** ``~y_{t-1}`` (length ``|y|``; §3.3 "we use the decoding
   result with the original target length"):

   * ``t = 1``: ``y_0``;
   * ``--diffusion-process modality`` (eq. 24): the next prediction ``P_{t-2}`` is
     transition ``k+1``'s token distribution read at the vertices of the best
     alignment of ``y_0`` to transition ``k+1``'s graph (eq. 13); ``^y_t`` is read
     at the same vertices for the choice of ``gamma``
     (:func:`~nat_plugins.modules.modality_diffusion.choose_gamma`); ``<pad>``,
     ``<s>`` and ``</s>`` are never targets.  Before ``--diffusion-warmup-updates``
     updates every target is ``y_0`` (Appendix E: "for the first 100k steps, we train
     the model to predict the target y_0 at all steps t");
   * ``absorbing`` / ``uniform`` (Table 6): ``y_0`` with each token masked
     (``<unk>``) or redrawn uniformly with probability ``(t-1)/T``
     (:func:`~nat_plugins.modules.noise.d3pm_corruption`).  These targets do not
     depend on the model, so the warm-up does not apply to them;

4. **residual glancing** (:class:`~nat_plugins.modules.residual_glancing.ResidualGlancingSampler`,
   ratio ``alpha`` from ``--glance-alpha``): best alignment of ``~y_{t-1}`` to
   transition ``k``'s graph; ``S = round(alpha * d(~y_{t-1}, ^y_{t-1}))`` vertices among
   the aligned ones where ``^y_t != ~y_{t-1}``;
5. **gradient pass of transition k**, on ``H_t`` with the glanced vertices' states
   replaced by the embeddings of their ``~y_{t-1}`` tokens (for ``k = 0`` the input
   is the embedded canvas).  Why not ``--diffusion-detach-inputs`` by default: with a
   detached input each layer group only ever learns from frozen states, and on the
   synthetic multimodality data the model then never learned ``y_0`` (the last
   transition stayed at 3.9 bits while the intermediate transitions fitted their own
   argmax at 0 bits, ``benchmarks/diffglat.md``);
6. loss ``-log P_DAG(~y_{t-1}) / |y|`` (:func:`nat_plugins.ops.dag_log_likelihood`),
   averaged over sentences.  A glanced vertex may only emit the token it was fed
   (other tokens ``-inf``, as ``dag_loss`` does).  ``--glance-loss-on`` decides
   whether that emission is scored:

   * ``all`` (default, DA-Transformer's glancing convention): it is, so every target
     token has an emission term.  **A deliberate departure from eq. 11**, which
     scores only the remaining tokens: on the synthetic multimodality data a model
     trained with ``remaining`` stayed on the 3.8-bit plateau for 600+ updates
     (1 and 3 iterations alike) while ``all`` left it at ~450 updates, as the DAT
     does at ~300 (diagnostic runs, 2026-12-02, closing note of issue 7);
   * ``remaining`` (eq. 11 read for a DAG): the glanced emission costs nothing
     (``match = 0``), so glanced tokens add no emission term while the links
     through them are still trained (:func:`free_glanced`).

7. ``--modality-anchor lambda`` (default 0, off; **not in the paper**): at the
   intermediate levels of the modality process the loss becomes
   ``L(~y_{t-1}) + lambda * L(y_0)``, with ``L(y_0)`` the same graph's NLL of the data
   (no glance rule: the glanced vertices were fed ``~y_{t-1}``).  Why it exists: with
   eq. 24 alone, on the synthetic multimodality data, the process collapsed within
   200 updates of the warm-up's end.  When the previous output ``^y_t`` has no token
   right, the gamma rule holds for every gamma, the intermediate targets become the
   model's own argmax, the transitions fit them at ~0 bits, and the last transition,
   which shares their parameters, went from 0.7 to 4-5 bits (validation 23.9 bits).
   Capping the gamma set at 0.5 did not prevent it (10.7 bits).  With ``lambda = 1``
   the last transition stayed at 0.7-0.9 bits and the validation loss kept falling
   (3.45 -> 2.50 bits over 500 updates; ``benchmarks/diffglat.md``, 2026-12-02).

Size problems and non-finite sentences are handled as in ``dag_loss`` (skipped /
zeroed and counted).  In validation (eval mode) the loss is the last transition's
(``t = 1``, target ``y_0``) after the full no-grad process, without glancing: the
graph decoding reads.

Logged: ``loss``; ``loss_t{k}`` per transition ``k`` (generation order: ``loss_t0``
reads the canvas, ``loss_t{T-1}`` predicts ``y_0``), each averaged only over the
steps that sampled it; ``level`` (mean sampled ``t``); ``gamma`` (mean over sentences
given a modality target); ``glance_p`` (= ``alpha``) and ``glanced_frac``;
``skipped``, ``nonfinite``.  The ``alpha`` schedule and the warm-up follow the update
number fairseq restores on resume (``set_num_updates``).
"""
import math
import re
from dataclasses import dataclass, field

import torch
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from ..errors import NATUserError
from ..modules.glancing import GlanceSchedule
from ..modules.modality_diffusion import (
    DEFAULT_GAMMAS, choose_gamma, d3pm_corruption_rate, modality_target, transition_of_level,
)
from ..modules.noise import d3pm_corruption
from ..modules.residual_glancing import ResidualGlancingSampler
from ..ops import dag_best_alignment
from .dag_loss import DAGLoss, force_glanced, mean_finite_nll, target_match

__all__ = ["DiffGLATLoss", "free_glanced", "vertex_of_position"]

_LEVEL_LOSS = re.compile(r"^loss_t\d+$")


@dataclass
class DiffGLATLossConfig(FairseqDataclass):
    glance_alpha: str = field(
        default="0.5:0.1@200k",
        metadata={"help": "residual glancing ratio alpha: A, or START:END@UPDATES annealed linearly (0 disables)"},
    )
    glance_alpha_periodic: bool = field(
        default=False, metadata={"help": "restart the alpha anneal every UPDATES updates (App. E, iterative models)"}
    )
    diffusion_process: ChoiceEnum(["modality", "absorbing", "uniform"]) = field(
        default="modality", metadata={"help": "intermediate targets: modality diffusion, or D3PM absorbing/uniform"}
    )
    diffusion_warmup_updates: int = field(
        default=100000, metadata={"help": "modality process: every transition predicts y_0 for this many updates"}
    )
    modality_gammas: str = field(
        default=",".join(f"{g:g}" for g in DEFAULT_GAMMAS),
        metadata={"help": "modality process: the predefined gamma set, comma-separated values in (0, 1]"},
    )
    modality_keep: float = field(
        default=0.9, metadata={"help": "modality process: share of already-correct tokens gamma must keep"}
    )
    glance_loss_on: ChoiceEnum(["all", "remaining"]) = field(
        default="all",
        metadata={"help": "score the glanced tokens' emissions too (all, as DA-Transformer) or only the others (eq. 11)"},
    )
    modality_anchor: float = field(
        default=0.0,
        metadata={"help": "modality process: weight of a y_0 loss added at the intermediate levels (0: eq. 24 only)"},
    )
    diffusion_detach_inputs: bool = field(
        default=False,
        metadata={"help": "train only the sampled transition: its input comes from a no-grad pass of the earlier ones"},
    )


def free_glanced(match, target, alignment, glanced):
    """A glanced vertex emits only its fed token, at no cost.

    Args:
        match: ``[B, T, P]``; target: ``[B, T]``; alignment: ``[B, P]``; glanced: ``[B, P]`` bool.
    Returns:
        ``match`` with, at glanced ``j``: ``0`` where ``y_t' == y_{alignment[j]}``, else ``-inf``.
    """
    fed = target.gather(1, alignment.clamp(min=0))
    same = target[:, :, None].eq(fed[:, None, :]) & glanced[:, None, :]
    return force_glanced(match, target, alignment, glanced).masked_fill(same, 0.0)


def vertex_of_position(alignment, width):
    """Invert an alignment: ``[B, P]`` (target index or ``-1``) -> ``[B, width]`` vertex of each
    target position (``0`` for positions off the path)."""
    B, P = alignment.shape
    slot = torch.where(alignment.ge(0), alignment, torch.full_like(alignment, width))
    vertices = torch.arange(P, device=alignment.device).expand(B, P)
    return alignment.new_zeros(B, width + 1).scatter(1, slot, vertices)[:, :width]


@register_criterion("diffglat_loss", dataclass=DiffGLATLossConfig)
class DiffGLATLoss(DAGLoss):
    """Reuses ``dag_loss``'s update tracking (:meth:`glance_ratio`) and metrics."""

    def __init__(self, task, glance_alpha="0.5:0.1@200k", glance_alpha_periodic=False, diffusion_process="modality",
                 diffusion_warmup_updates=100000, modality_gammas="1,0.9,0.8,0.7,0.6,0.5,0.4,0.3,0.2,0.1",
                 modality_keep=0.9, diffusion_detach_inputs=False, glance_loss_on="all", modality_anchor=0.0):
        FairseqCriterion.__init__(self, task)
        try:
            self.schedule = GlanceSchedule(glance_alpha, periodic=glance_alpha_periodic)
        except ValueError as exc:
            raise NATUserError(f"--glance-alpha: {exc}") from exc
        try:
            self.gammas = tuple(float(g) for g in str(modality_gammas).split(","))
        except ValueError:
            self.gammas = ()
        if not self.gammas or not all(0 < g <= 1 for g in self.gammas):
            raise NATUserError(f"--modality-gammas {modality_gammas!r}: expected comma-separated values in (0, 1]")
        if not 0 <= modality_keep <= 1:
            raise NATUserError(f"--modality-keep {modality_keep}: expected a share in [0, 1]")
        if diffusion_warmup_updates < 0:
            raise NATUserError("--diffusion-warmup-updates must be >= 0")
        if modality_anchor < 0:
            raise NATUserError(f"--modality-anchor {modality_anchor}: expected a weight >= 0")
        self.anchor = float(modality_anchor)
        self.process = str(diffusion_process)
        self.warmup_updates = int(diffusion_warmup_updates)
        self.keep = float(modality_keep)
        self.detach_inputs = bool(diffusion_detach_inputs)
        self.glanced_emission = {"all": force_glanced, "remaining": free_glanced}.get(str(glance_loss_on))
        if self.glanced_emission is None:
            raise NATUserError(f"--glance-loss-on {glance_loss_on!r}: expected 'all' or 'remaining'")
        self.sampler = ResidualGlancingSampler()
        self.num_updates = 0

    def sample_level(self, num_transitions):
        """The diffusion level trained this step, uniform over ``1..T``."""
        return int(torch.randint(1, num_transitions + 1, (1,)))

    def target_kind(self, level):
        """``"data"`` (``y_0``), ``"modality"`` or a D3PM process, for the target of level ``level - 1``."""
        if level == 1:
            return "data"
        if self.process == "modality":
            return "data" if self.num_updates < self.warmup_updates else "modality"
        return self.process

    # ---- one training step -------------------------------------------------------
    def forward(self, model, sample, reduce=True):
        src_tokens = sample["net_input"]["src_tokens"]
        # y0: y, or <s> y </s> (--dag-frame-target); `real` marks content, so the frame is never
        # replaced by a modality or D3PM target.
        y0, tgt_len, real = model.dag_target(sample["target"])

        encoder_out = model.encode(src_tokens, sample["net_input"]["src_lengths"])
        graph_len = model.graph_lengths(src_tokens, model.upsample_scale())
        rows = (tgt_len.ge(1) & tgt_len.le(graph_len)).nonzero().squeeze(1)
        nsentences = y0.size(0)
        # Index rows only when some are skipped: copying [B, P, V] logits is not free.
        pick = (lambda x: x) if rows.numel() == nsentences else (lambda x: x[rows])
        sizes = (graph_len, tgt_len, rows, pick)
        canvas = model.graph_canvas(graph_len)

        alpha = self.glance_ratio(model)  # also syncs num_updates for the warm-up
        T = model.num_transitions()
        if model.training:
            level = self.sample_level(T)
        else:
            level, alpha = 1, 0.0
        k = transition_of_level(level, T)
        kind = self.target_kind(level)
        if rows.numel() == 0:
            kind, alpha = "data", 0.0
        if kind in ("absorbing", "uniform"):
            y_tilde, _ = d3pm_corruption(y0, real, d3pm_corruption_rate(level, T), kind, mask_idx=model.unk,
                                         symbols=model.noise_symbols)
        else:
            y_tilde = y0
        gamma = None

        # The process up to level t (module docstring, step 2).
        states, padding_mask = model.initial_states(canvas)
        nothing = torch.zeros_like(canvas, dtype=torch.bool)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_inputs):
            h_t = model.run_transitions(states, encoder_out, padding_mask, 0, k)
        with torch.no_grad():
            prev_output = model.token_logits(h_t).argmax(-1) if k > 0 else canvas  # ^y_t [B, P]
        h_in = states if k == 0 else h_t
        alignment, glanced = None, nothing
        if alpha > 0 or kind == "modality":
            devices = [canvas.device.index or 0] if canvas.device.type == "cuda" else []
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                out = model.transition(model.glanced_states(h_in, canvas, nothing), encoder_out, padding_mask, k)
                if kind == "modality":
                    nxt = model.transition(out, encoder_out, padding_mask, k + 1)
                    y_tilde, gamma = self.modality_step(
                        model, *model.transition_outputs(nxt, graph_len), y0, real, prev_output, sizes)
                    del nxt
                if alpha > 0:
                    logits, links = model.transition_outputs(out, graph_len)
                    alignment = self.best_alignment(logits, links, y_tilde, sizes)
                    aligned_tok = y_tilde.gather(1, alignment.clamp(min=0))
                    glanced = self.sampler.select(alignment, logits.argmax(-1).eq(aligned_tok), alpha,
                                                  captured=prev_output.eq(aligned_tok))
                    del logits, links
                del out

        # Gradient pass of transition k (step 5).
        glance_tokens = canvas if alignment is None else self.sampler.glance_inputs(canvas, y_tilde, alignment, glanced)
        out = model.transition(model.glanced_states(h_in, glance_tokens, glanced), encoder_out, padding_mask, k)
        logits, links = model.transition_outputs(out, graph_len)
        n_ok = int(rows.numel())
        if n_ok > 0:
            match = target_match(pick(logits), pick(y_tilde))
            if alignment is not None:
                match = self.glanced_emission(match, pick(y_tilde), pick(alignment), pick(glanced))
            graph = (pick(links), pick(graph_len), pick(tgt_len))  # indexed once: links are [B, P, P]
            loss, n_finite = mean_finite_nll(match, *graph)
            if kind == "modality" and self.anchor > 0:
                anchor, _ = mean_finite_nll(target_match(pick(logits), pick(y0)), *graph)
                loss = loss + self.anchor * anchor
        else:
            n_finite = 0
            # Keep the graph connected so backward() works; the gradient is zero.
            loss = logits.float().sum() * 0.0

        ok_tokens = int(tgt_len[rows].sum()) if n_ok else 0
        logging_output = {
            "loss": loss.detach(),
            "nll_loss": loss.detach(),
            "ntokens": ok_tokens,
            "nsentences": nsentences,
            "sample_size": 1,
            "skipped": nsentences - n_ok,
            "nonfinite": n_ok - n_finite,
            "glance_p": alpha,
            "glanced": int(glanced.sum()),
            "glance_of": ok_tokens if alpha > 0 else 0,
            "graph_vertices": int(graph_len.sum()),
            "target_tokens": int(tgt_len.sum()),
            "level": level,
            f"loss_t{k}": float(loss.detach()) * n_finite,
            f"loss_t{k}_n": n_finite,
            "gamma_sum": float(gamma[rows].sum()) if gamma is not None else 0.0,
            "gamma_n": n_ok if gamma is not None else 0,
        }
        return loss, 1, logging_output

    # ---- pieces ------------------------------------------------------------------------
    @staticmethod
    def best_alignment(logits, links, target, sizes):
        """``[B, P]`` best alignment of ``target [B, T]`` to a graph; ``-1`` rows for skipped sentences."""
        graph_len, tgt_len, rows, pick = sizes
        alignment = target.new_full(links.shape[:2], -1)
        alignment[rows] = dag_best_alignment(target_match(pick(logits), pick(target)), pick(links),
                                             pick(graph_len), pick(tgt_len))
        return alignment

    def modality_step(self, model, next_logits, next_links, y0, real, prev_output, sizes):
        """``(~y_{t-1} [B, T], gamma [B])`` from the next transition's graph (eq. 13 and 24).

        ``P_{t-2}`` and ``^y_t`` are read at the vertices of ``y_0``'s best alignment to the
        next graph; a sentence without a finite path keeps ``y_0``.
        """
        alignment = self.best_alignment(next_logits, next_links, y0, sizes)
        vertex = vertex_of_position(alignment, y0.size(1))  # [B, T]
        B, T = vertex.shape
        picked = next_logits.gather(1, vertex[:, :, None].expand(B, T, next_logits.size(-1)))
        next_lp = torch.log_softmax(picked.float(), dim=-1)
        next_lp[..., sorted({model.pad, model.bos, model.eos})] = float("-inf")
        usable = real & alignment.ge(0).any(1, keepdim=True)
        gamma = choose_gamma(next_lp, y0, prev_output.gather(1, vertex), usable, self.gammas, self.keep)
        return torch.where(usable, modality_target(next_lp, y0, gamma), y0), gamma

    @staticmethod
    def reduce_metrics(logging_outputs):
        DAGLoss.reduce_metrics(logging_outputs)

        def total(key):
            return sum(float(log.get(key, 0)) for log in logging_outputs)

        keys = sorted({key for log in logging_outputs for key in log if _LEVEL_LOSS.match(key)})
        for key in keys:
            n = total(key + "_n")
            if n > 0:
                metrics.log_scalar(key, total(key) / n / math.log(2), n, round=3)
        if logging_outputs:
            metrics.log_scalar("level", total("level") / len(logging_outputs), 1, round=2)
        if total("gamma_n") > 0:
            metrics.log_scalar("gamma", total("gamma_sum") / total("gamma_n"), total("gamma_n"), round=3)
