"""Residual glancing sampling (DiffGLAT, Qian et al. 2023, §3.2 eq. 11-12, Figures 3-4).

Glancing as :class:`~nat_plugins.modules.glancing.GlancingSampler` does it, with the
two changes of DiffGLAT, for the transition that maps level ``t`` to ``t - 1``:

* **layer-wise**: glanced vertices get the embedding of their token of the
  intermediate target ``~y_{t-1}`` in place of the transition's *input hidden state*
  ``H_t`` (not of a decoder input token); the model does that replacement
  (``DiffGLATModel.glanced_states``), this module chooses the vertices and tokens;
* **residual**: the number of glanced vertices is still
  ``S = round(alpha * d(~y_{t-1}, ^y_{t-1}))`` (:meth:`GlancingSampler.count`,
  ``d`` = mismatches of the transition's own no-grad argmax over the aligned
  vertices), but they are drawn uniformly **only among the aligned vertices where
  the previous output** ``^y_t`` **differs from** ``~y_{t-1}`` (eq. 12: the input
  already captures the others); ``S`` is capped at that number.

On DA-Transformer (§3.3) "positions" are the vertices of the best alignment of
``~y_{t-1}`` to the transition's graph; ``^y_t`` is the previous transition's argmax
at those vertices (the canvas, ``<s> <unk>... </s>`` or all
``<unk>``, for the first transition).
"""
from .glancing import GlancingSampler

__all__ = ["ResidualGlancingSampler"]


class ResidualGlancingSampler(GlancingSampler):
    """:class:`GlancingSampler` whose draw excludes vertices the previous output already has right."""

    def select(self, alignment, correct, ratio, generator=None, captured=None):
        """Glanced vertices: ``[B, P]`` bool.

        Args:
            alignment: ``[B, P]`` long, index into ``~y_{t-1}`` or ``-1`` (off the best path).
            correct: ``[B, P]`` bool, ``^y_{t-1} == ~y_{t-1}`` at the vertex (the count's ``same``).
            ratio: ``alpha``.
            generator: optional ``torch.Generator``.
            captured: ``[B, P]`` bool, ``^y_t == ~y_{t-1}`` at the vertex; ``None`` = nothing captured.
        Returns:
            ``min(S_b, |aligned & ~captured|)`` vertices per row, all aligned and not captured.
        """
        aligned = alignment.ge(0)
        eligible = aligned if captured is None else aligned & ~captured
        return self.choose(eligible, self.count(aligned, correct, ratio), generator)
