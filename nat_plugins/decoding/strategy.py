"""Decoding strategies: the per-algorithm part of NAT decoding.

The shared loop (length candidates, samples, refinement steps, early stop,
history, reranking) lives in :class:`nat_plugins.decoding.generator.NATGenerator`.
A strategy only says how to start, how to do one step and how to read out
the result, for the model families it declares.
"""
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch

__all__ = ["CanvasState", "DecodingOptions", "DecodingStrategy", "STRATEGIES", "register_strategy"]

#: name -> strategy class; filled by :func:`register_strategy`.
STRATEGIES: Dict[str, type] = {}


def register_strategy(cls):
    """Class decorator: make a strategy selectable by ``--decoding-strategy``."""
    if cls.name in STRATEGIES:
        raise ValueError(f"decoding strategy {cls.name!r} registered twice")
    STRATEGIES[cls.name] = cls
    return cls


@dataclass
class DecodingOptions:
    """Model-independent decoding settings (read from the task config)."""

    iterations: int = 10
    length_beam: int = 1
    samples: int = 1
    temperature: float = 1.0
    early_stop: bool = False
    seed: Optional[int] = None
    extra: dict = field(default_factory=dict)


@dataclass
class CanvasState:
    """The decoder's current guess for N candidates.

    Attributes:
        tokens: [N, L] token ids, ``<pad>`` beyond each candidate's length.
        scores: [N, L] per-position log-probabilities of ``tokens``.
        lengths: [N] candidate lengths.
        changed: [N] bool, whether the last step changed the prediction
            (drives optional early stopping).
        extra: strategy-private tensors with a leading N dimension; the
            generator keeps them aligned when it drops finished rows.
    """

    tokens: torch.Tensor
    scores: torch.Tensor
    lengths: torch.Tensor
    changed: Optional[torch.Tensor] = None
    extra: dict = field(default_factory=dict)

    def select(self, idx):
        """The rows ``idx`` [M] of this state."""
        return CanvasState(
            self.tokens[idx], self.scores[idx], self.lengths[idx],
            None if self.changed is None else self.changed[idx],
            {k: v[idx] for k, v in self.extra.items()},
        )

    def assign(self, idx, other):
        """Write ``other`` (M rows) into rows ``idx`` of this state, in place."""
        self.tokens[idx] = other.tokens
        self.scores[idx] = other.scores
        self.lengths[idx] = other.lengths
        for k, v in other.extra.items():
            self.extra[k][idx] = v


class DecodingStrategy:
    """Base class.  Subclasses set ``name`` and ``families``.

    Attributes:
        name: value of ``--decoding-strategy``.
        families: model ``decoding_family`` values this strategy supports.
        stochastic: True if repeated runs may differ (disables early stop,
            which would freeze a row on a chance repetition).
    """

    name = None
    families = ()
    stochastic = False

    def __init__(self, options: DecodingOptions):
        self.options = options

    def num_steps(self):
        """Number of :meth:`step` calls after :meth:`initialize`."""
        return self.options.iterations

    def initialize(self, model, encoder_out, lengths, generator=None):
        """First canvas for candidates of the given ``lengths`` [N]."""
        raise NotImplementedError

    def step(self, model, encoder_out, state, step, num_steps, generator=None):
        """One refinement step; returns a new :class:`CanvasState`."""
        raise NotImplementedError

    def history_entry(self, model, state):
        """What ``--retain-iter-history`` keeps of a step: (tokens [N, L], lengths [N]
        or None).  By default the canvas, later cut at the final output length."""
        return state.tokens.clone(), None

    def finalize(self, model, encoder_out, state):
        """Read out the result: (tokens [N, L'], scores [N, L'], lengths [N], score [N]).

        The default returns the canvas itself, scored by the mean
        positional log-probability (Mask-Predict §3.3).
        """
        mask = torch.arange(state.tokens.size(1), device=state.tokens.device)[None, :] < state.lengths[:, None]
        total = (state.scores * mask).sum(1)
        score = total / state.lengths.clamp(min=1).to(total)
        return state.tokens, state.scores, state.lengths, score
