"""DiffGLAT training loss (Qian et al. 2023, §3.1-3.3, Appendix E) on DA-Transformer graphs.

One training step (§3.3 "Training": one diffusion timestep per step):

1. sample a level ``t`` in ``1..T``, each with probability ``mu = 1/T`` (Appendix E's
   glancing schedule, as read in :mod:`~nat_plugins.modules.modality_diffusion`), from
   torch's global RNG, which fairseq reseeds from ``--seed`` and the update number
   every step; the transition trained is ``k = T - t``
   (:func:`~nat_plugins.modules.modality_diffusion.transition_of_level`);
2. **the process up to level t**: transitions ``0 .. k-1`` give ``H_t`` and the previous
   output ``^y_t`` (argmax of transition ``k-1``; the canvas when ``k = 0``).
   ``H_t`` keeps its autograd graph, so the loss of transition ``k`` also trains the
   transitions that computed its input (§3.2: ``H_t`` "is consistent in both training
   and inference"; the paper samples *which loss* to compute, §3.3 "Training", and
   says nothing of cutting the gradient).  ``--diffusion-detach-inputs`` computes
   ``H_t`` without gradient instead (cheaper: only transition ``k`` is trained per
   step).  Only hidden states and ``[B, P]`` argmaxes are kept, never a ``[B, P, V]``
   tensor per transition.  Then, without gradient and inside
   ``torch.random.fork_rng`` (so the gradient pass redraws the same dropout masks, as
   ``dag_loss`` does), transition ``k`` and, when the process needs it, transition
   ``k+1``; the outputs of transitions ``0 .. k+1`` are kept for the modality chain;
3. the **intermediate target** ``~y_{t-1}`` (length ``|y|``; §3.3 "we use the decoding
   result with the original target length"):

   * ``t = 1``: ``y_0``;
   * ``--diffusion-process modality`` (eq. 24, :meth:`DiffGLATLoss.modality_targets`):
     the chain of intermediate targets ``~y_T -> ~y_{T-1} -> ... -> ~y_{t-1}``
     (:func:`~nat_plugins.modules.modality_diffusion.modality_chain`).  ``~y_T`` is the
     first transition's argmax (our explicit first-transition rule, written down in
     :mod:`~nat_plugins.modules.modality_diffusion`); each next target interpolates
     ``y_0`` with transition ``j``'s distribution ``P``, read at the vertices of the
     previous target's best alignment to transition ``j``'s graph (eq. 13), with
     ``gamma`` the largest of the set keeping 90% of ``y_0 * ~y_t``, the previous
     *target* (:func:`~nat_plugins.modules.modality_diffusion.choose_gamma`; not the
     previous output ``^y_t``, against which the rule was vacuous at the first
     transition: ``gamma = 1`` always).  Transition ``k`` is trained on the last link,
     ``~y_{t-1}``, built from ``P_{t-2}`` (transition ``k+1``).  ``<pad>``, ``<s>`` and
     ``</s>`` are never targets.  Before ``--diffusion-warmup-updates``
     updates every target is ``y_0`` (Appendix E: "for the first 100k steps, we train
     the model to predict the target y_0 at all steps t");
   * ``absorbing`` / ``uniform`` (Table 6): ``y_0`` with each token masked
     (``<unk>``) or redrawn uniformly with probability ``(t-1)/T``
     (:func:`~nat_plugins.modules.noise.d3pm_corruption`).  These targets do not
     depend on the model, so the warm-up does not apply to them;

4. **residual glancing** (:class:`~nat_plugins.modules.residual_glancing.ResidualGlancingSampler`,
   ratio ``alpha`` from ``--glance-alpha``; the anneal restarts every ``UPDATES``
   updates for iterative models, Appendix E: "decrease from 0.5 to 0.1 periodically
   for iterative DiffGLAT"; ``--glance-alpha-periodic auto|on|off``, default ``auto``
   = periodic when ``--diffusion-iterations > 1``.  We read "periodically" as over
   training updates, the axis the anneal runs on; the paper gives no period, so it
   is the anneal's own length): best alignment of ``~y_{t-1}`` to
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
   200 updates of the warm-up's end.  Those runs applied the gamma rule against the
   previous *output* ``^y_t``, so wherever it had no token right (always at the first
   transition) gamma was 1, the intermediate targets became the model's own argmax,
   the transitions fit them at ~0 bits, and the last transition, which shares their
   parameters, went from 0.7 to 4-5 bits (validation 23.9 bits).  Capping the gamma
   set at 0.5 did not prevent it (10.7 bits).  With ``lambda = 1`` the last transition
   stayed at 0.7-0.9 bits and the validation loss kept falling (3.45 -> 2.50 bits over
   500 updates; ``benchmarks/diffglat.md``, 2026-12-02).  Whether the faithful rule
   (against ``~y_t``) still needs it is what the synthetic rerun is for.

Size problems and non-finite sentences are handled as in ``dag_loss`` (skipped /
zeroed and counted).  In validation (eval mode) the loss is the last transition's
(``t = 1``, target ``y_0``) after the full no-grad process, without glancing: the
graph decoding reads.

Logged: ``loss``; ``loss_t{k}`` per transition ``k`` (generation order: ``loss_t0``
reads the canvas, ``loss_t{T-1}`` predicts ``y_0``), each averaged only over the
steps that sampled it; ``level`` (mean sampled ``t``); ``gamma`` (mean over sentences
given a modality target); ``y0_share`` (mean share of a modality target's content
tokens equal to ``y_0``: near 1, the process adds little; falling, it drifts to the
model's own argmax); ``glance_p`` (= ``alpha``) and ``glanced_frac``;
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
    DEFAULT_GAMMAS, d3pm_corruption_rate, level_distribution, modality_chain, transition_of_level,
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
    glance_alpha_periodic: ChoiceEnum(["auto", "on", "off"]) = field(
        default="auto",
        metadata={"help": "restart the alpha anneal every UPDATES updates (App. E): auto = for iterative models "
                          "(--diffusion-iterations > 1); the bare flag means on", "argparse_const": "on"},
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
        metadata={"help": "ours, not in the paper: weight of a y_0 loss added at the intermediate levels of the modality "
                          "process (0, the default: eq. 24 only)"},
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

    def __init__(self, task, glance_alpha="0.5:0.1@200k", glance_alpha_periodic="auto", diffusion_process="modality",
                 diffusion_warmup_updates=100000, modality_gammas="1,0.9,0.8,0.7,0.6,0.5,0.4,0.3,0.2,0.1",
                 modality_keep=0.9, diffusion_detach_inputs=False, glance_loss_on="all", modality_anchor=0.0):
        FairseqCriterion.__init__(self, task)
        try:
            self.schedules = {periodic: GlanceSchedule(glance_alpha, periodic=periodic) for periodic in (False, True)}
        except ValueError as exc:
            raise NATUserError(f"--glance-alpha: {exc}") from exc
        # a bool from an older config: True was "on", False the old default (never periodic)
        periodic = {True: "on", False: "off"}.get(glance_alpha_periodic, str(glance_alpha_periodic))
        if periodic not in ("auto", "on", "off"):
            raise NATUserError(f"--glance-alpha-periodic {glance_alpha_periodic!r}: expected auto, on or off")
        self.alpha_periodic = periodic
        self.schedule = self.schedules[periodic == "on"]
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
        """The diffusion level trained this step: ``t`` in ``1..T`` with probability ``mu = 1/T``
        (:func:`~nat_plugins.modules.modality_diffusion.level_distribution`)."""
        return int(torch.multinomial(level_distribution(num_transitions), 1)) + 1

    def periodic_alpha(self, model):
        """Whether the ``alpha`` anneal restarts (Appendix E: periodic "for iterative DiffGLAT")."""
        if self.alpha_periodic == "auto":
            return int(getattr(model, "diffusion_iterations", 1)) > 1
        return self.alpha_periodic == "on"

    def glance_ratio(self, model):
        self.schedule = self.schedules[self.periodic_alpha(model)]
        return super().glance_ratio(model)

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

        # The process up to level t (module docstring, step 2); the outputs of transitions
        # 0..k-1 are kept ([B, P, C] each) for the modality chain.
        states, padding_mask = model.initial_states(canvas)
        nothing = torch.zeros_like(canvas, dtype=torch.bool)
        chain_states = []
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_inputs):
            h_t = states
            for j in range(k):
                h_t = model.transition(h_t, encoder_out, padding_mask, j)
                chain_states.append(h_t)
        with torch.no_grad():
            prev_output = model.token_logits(h_t).argmax(-1) if k > 0 else canvas  # ^y_t [B, P]
        alignment, glanced = None, nothing
        if alpha > 0 or kind == "modality":
            devices = [canvas.device.index or 0] if canvas.device.type == "cuda" else []
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                # transition k first: the gradient pass below redraws these dropout masks
                out = model.transition(model.glanced_states(h_t, canvas, nothing), encoder_out, padding_mask, k)
                if kind == "modality":
                    chain_states += [out, model.transition(out, encoder_out, padding_mask, k + 1)]
                    y_tilde, gamma, y0_share = self.modality_targets(model, chain_states, y0, real, sizes)
                del chain_states
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
        out = model.transition(model.glanced_states(h_t, glance_tokens, glanced), encoder_out, padding_mask, k)
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
            "y0_share_sum": float(y0_share[rows].sum()) if gamma is not None else 0.0,
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

    def modality_targets(self, model, chain_states, y0, real, sizes):
        """``(~y_{t-1} [B, T], gamma_{t-1} [B], share of its real tokens equal to y_0 [B])``.

        ``chain_states``: the outputs ``[B, P, C]`` of transitions ``0 .. k+1`` (``k`` the one
        trained).  The chain ``~y_T -> ... -> ~y_{t-1}``
        (:func:`~nat_plugins.modules.modality_diffusion.modality_chain`) reads transition
        ``j``'s distribution at the vertices of the previous target's best alignment to
        transition ``j``'s graph (eq. 13; ``y_0``'s for ``j = 0``).  ``<pad>``, ``<s>`` and
        ``</s>`` are never targets.
        """
        graph_len = sizes[0]
        excluded = sorted({model.pad, model.bos, model.eos})

        def read(j, target):
            logits, links = model.transition_outputs(chain_states[j], graph_len)
            alignment = self.best_alignment(logits, links, target, sizes)
            vertex = vertex_of_position(alignment, target.size(1))  # [B, T]
            B, T = vertex.shape
            picked = logits.gather(1, vertex[:, :, None].expand(B, T, logits.size(-1)))
            logprobs = torch.log_softmax(picked.float(), dim=-1)
            logprobs[..., excluded] = float("-inf")
            return logprobs, alignment.ge(0).any(1)

        targets, gammas = modality_chain(read, y0, real, len(chain_states) - 1, self.gammas, self.keep)
        y_tilde = targets[-1]
        share = (real & y_tilde.eq(y0)).sum(1).float() / real.sum(1).clamp(min=1).float()
        return y_tilde, gammas[-1], share

    @staticmethod
    def reduce_metrics(logging_outputs):
        DAGLoss.reduce_metrics(logging_outputs)

        def total(key):
            return sum(float(log.get(key, 0)) for log in logging_outputs)

        from ..compat import forget_idle_meters

        # else a level (or gamma) not sampled in a log interval prints as None
        forget_idle_meters(re.compile(r"^(loss_t\d+|gamma|y0_share)$"))
        keys = sorted({key for log in logging_outputs for key in log if _LEVEL_LOSS.match(key)})
        for key in keys:
            n = total(key + "_n")
            if n > 0:
                metrics.log_scalar(key, total(key) / n / math.log(2), n, round=3)
        if logging_outputs:
            metrics.log_scalar("level", total("level") / len(logging_outputs), 1, round=2)
        if total("gamma_n") > 0:
            metrics.log_scalar("gamma", total("gamma_sum") / total("gamma_n"), total("gamma_n"), round=3)
            metrics.log_scalar("y0_share", total("y0_share_sum") / total("gamma_n"), total("gamma_n"), round=3)
