"""Glancing sampling (GLAT, Qian et al. 2021) as DA-Transformer uses it (Huang et al., ICML 2022, §2.3).

Given the best alignment of the target to the DAG's vertices (computed by a
no-grad first pass, :func:`nat_plugins.ops.dag_best_alignment`):

1. ``aligned`` = the ``T`` vertices on the best path; ``same`` = how many of them
   already predict (argmax) their aligned target token;
2. ``n = round((T - same) * p)`` (round half up), at most ``T``;
3. ``n`` vertices drawn uniformly **among the aligned ones** (correct or not, as
   in GLAT) are *glanced*: the second pass feeds them the embedding of their
   aligned target token instead of ``<unk>``.

The pieces are methods of :class:`GlancingSampler` so that a later variant
(DiffGLAT's residual glancing) can override just one of them: how many
vertices (:meth:`~GlancingSampler.count`), which ones
(:meth:`~GlancingSampler.select`, drawing with :meth:`~GlancingSampler.choose`) or
what they receive (:meth:`~GlancingSampler.glance_inputs`).

:class:`GlanceSchedule` anneals ``p`` with the update number, which fairseq
restores on resume, so the schedule survives restarts.
"""
import re

import torch

__all__ = ["GlanceSchedule", "GlancingSampler"]


class GlanceSchedule:
    """Glancing ratio as a function of the update number.

    Spec: ``"0.3"`` (constant) or ``"START:END@STEPS"`` (linear from START at
    update 0 to END at update STEPS, constant afterwards; STEPS may end in
    ``k`` or ``m``), e.g. ``"0.5:0.1@200k"``.  With ``periodic=True`` the anneal
    restarts every STEPS updates (DiffGLAT, Appendix E: "decrease from 0.5 to
    0.1 periodically").
    """

    _PATTERN = re.compile(r"^\s*([0-9.eE+-]+)\s*(?::\s*([0-9.eE+-]+)\s*@\s*([0-9.]+)\s*([kKmM]?))?\s*$")

    def __init__(self, spec, periodic=False):
        self.periodic = bool(periodic)
        m = self._PATTERN.match(str(spec))
        if m is None:
            raise ValueError(f"glancing schedule {spec!r}: expected P or START:END@STEPS (e.g. 0.5:0.1@200k)")
        self.spec = str(spec)
        self.start = float(m.group(1))
        self.end = float(m.group(2)) if m.group(2) is not None else self.start
        steps = float(m.group(3)) if m.group(3) is not None else 0.0
        steps *= {"": 1, "k": 1e3, "m": 1e6}[(m.group(4) or "").lower()]
        self.steps = int(steps)
        for v in (self.start, self.end):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"glancing schedule {spec!r}: ratios must lie in [0, 1]")

    def __call__(self, num_updates):
        if self.steps <= 0:
            return self.end
        updates = max(num_updates, 0)
        if self.periodic:
            updates %= self.steps
        frac = min(updates / self.steps, 1.0)
        return self.start + (self.end - self.start) * frac


class GlancingSampler:
    """Choose glanced vertices and build the second pass's decoder input."""

    def count(self, aligned, correct, ratio):
        """How many vertices to glance per sentence.

        Args:
            aligned: ``[B, P]`` bool, vertices on the best path (``T_b`` per row).
            correct: ``[B, P]`` bool, vertices whose argmax is their aligned token.
            ratio: glancing ratio ``p``.
        Returns:
            ``[B]`` long, ``round_half_up((T_b - same_b) * p)``.
        """
        total = aligned.sum(1)
        same = (aligned & correct).sum(1)
        n = torch.floor((total - same).double() * ratio + 0.5).long()
        return torch.minimum(n, total)

    def select(self, alignment, correct, ratio, generator=None):
        """Glanced vertices: ``[B, P]`` bool, ``count(...)`` random aligned vertices per row.

        Args:
            alignment: ``[B, P]`` long, aligned target index or ``-1`` (off the path).
            correct: ``[B, P]`` bool (see :meth:`count`).
            ratio: glancing ratio ``p``.
            generator: optional ``torch.Generator``.
        """
        aligned = alignment.ge(0)
        return self.choose(aligned, self.count(aligned, correct, ratio), generator)

    @staticmethod
    def choose(eligible, n, generator=None):
        """``[B, P]`` bool: ``min(n_b, |eligible_b|)`` vertices drawn uniformly among ``eligible`` ``[B, P]``."""
        # Random keys in [0, 1) for eligible vertices, 2 for the others: the
        # n smallest keys of a row are n uniformly chosen eligible vertices.
        keys = torch.rand(eligible.shape, device=eligible.device, generator=generator)
        keys = keys.masked_fill(~eligible, 2.0)
        rank = keys.argsort(1).argsort(1)
        return (rank < n[:, None]) & eligible

    def glance_inputs(self, canvas, target, alignment, glanced):
        """Decoder input of the second pass.

        Args:
            canvas: ``[B, P]`` position-only input (``<unk>``/``<pad>``).
            target: ``[B, T]`` target tokens.
            alignment: ``[B, P]`` aligned target index or ``-1``.
            glanced: ``[B, P]`` bool from :meth:`select`.
        Returns:
            ``[B, P]``: ``canvas`` with ``target[b, alignment[b, j]]`` at glanced vertices.
        """
        tokens = target.gather(1, alignment.clamp(min=0))
        return torch.where(glanced, tokens, canvas)
