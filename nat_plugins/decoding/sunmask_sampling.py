"""SUNMASK sampling (Kastner et al. 2022, §2.3), for translation (our adaptation).

Start: SUNDAE's prior, uniform random tokens on the canvas of each length
candidate, and the initial mask: all 0 (free translation), or 1 at the fixed
positions of a target template (infilling, :mod:`nat_plugins.decoding.templates`).
Then ``N = --decode-iterations`` steps ``n = 0 .. N-1``:

1. a step mask: every non-fixed canvas position is masked (``m = 0``) with
   probability ``alpha_n = max(a_min, a_max - n / (eta N) (a_max - a_min))``,
   ``a_min = .001``, ``a_max = .999``, ``eta = 3/4`` (Coconet's annealed schedule, §2.3);
   combined with the initial mask: fixed positions are always ``m = 1``;
2. ``f_theta(. | x, m)`` for every position, sampled with temperature
   ``--decode-temperature`` and typical sampling (Meister et al. 2022) of mass
   ``--sunmask-typical-mass`` (1 turns it off);
3. accept/reject: a masked position takes its sample with probability ``p_n``, the
   triangular ramp from ``lo`` up to ``hi`` (middle step) and back down to ``lo``
   (``--sunmask-accept lo:hi``, §2.3 "as shown in SUNDAE"; default ``1:1``, always accept).

Our readings, where §2.3 leaves room:

* only masked positions may change ("predictions are then accepted or rejected"):
  the loss never trains predictions at ``m = 1`` (§2 eq. 2), so using them would
  feed untrained outputs back;
* no re-noising and no active balance (§2.3 lists both as task-dependent options);
* the typical mass: the paper gives none; 0.95 is our default (Meister et al.
  use 0.95 for summarisation).

The read-out and the rerank score of ``--decode-samples`` candidates are
SUNDAE's (:meth:`SUNDAEModel.read_out`, :meth:`SUNDAEModel.model_score`), the
score with an all-0 mask.
"""
import torch
import torch.nn.functional as F

from ..errors import NATUserError
from .strategy import CanvasState, register_strategy
from .sundae_sampling import _SundaeBase
from .templates import respect_template

__all__ = ["SunmaskSample", "coconet_alpha", "accept_probability", "typical_filter"]

#: Coconet's schedule constants (SUNMASK §2.3)
ALPHA_MIN, ALPHA_MAX, ETA = 0.001, 0.999, 0.75


def coconet_alpha(step, num_steps, a_min=ALPHA_MIN, a_max=ALPHA_MAX, eta=ETA):
    """Share of non-fixed positions masked at ``step`` (0-based) of ``num_steps`` (§2.3)."""
    return max(a_min, a_max - step / (eta * num_steps) * (a_max - a_min))


def accept_probability(step, num_steps, lo, hi):
    """Triangular ramp ``lo -> hi -> lo`` over the steps (peak at the middle step)."""
    if num_steps <= 1:
        return hi
    frac = step / (num_steps - 1)
    return lo + (hi - lo) * (1.0 - abs(2.0 * frac - 1.0))


def typical_filter(logits, mass):
    """Locally typical set (Meister et al. 2022): ``logits`` [R, V] with ``-inf`` outside it.

    Tokens are ordered by ``|-log p - H(p)|``; the smallest prefix whose probability
    reaches ``mass`` is kept (at least one token).
    """
    if mass >= 1.0:
        return logits
    logp = F.log_softmax(logits, -1)
    p = logp.exp()
    entropy = -(p * logp.masked_fill(p.eq(0), 0.0)).sum(-1, keepdim=True)
    dev = (-logp - entropy).abs().masked_fill(p.eq(0), float("inf"))
    order = dev.argsort(-1)
    sorted_p = p.gather(-1, order)
    before = sorted_p.cumsum(-1) - sorted_p
    drop_sorted = before >= mass
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def _parse_accept(text):
    try:
        parts = [float(v) for v in str(text).split(":")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(0.0 < v <= 1.0 for v in parts):
        raise NATUserError(f"--sunmask-accept must be P or LO:HI with values in (0, 1], got {text!r}")
    return parts


@register_strategy
class SunmaskSample(_SundaeBase):
    """Coconet-annealed mask, typical sampling, accept/reject ramp (module docstring).

    SUNDAE's prior, template canvas, read-out, rerank score and step history are inherited.
    """

    name = "sunmask_sample"
    families = ("sunmask",)
    stochastic = True

    def __init__(self, options):
        super().__init__(options)
        self.temperature = float(options.temperature)
        self.typical_mass = float(options.extra.get("sunmask_typical_mass") or 0.95)
        if not 0.0 < self.typical_mass <= 1.0:
            raise NATUserError(f"--sunmask-typical-mass must be in (0, 1], got {self.typical_mass}")
        self.accept_lo, self.accept_hi = _parse_accept(options.extra.get("sunmask_accept") or "1")

    def sample_tokens(self, model, logits, generator=None):
        """Tokens [N, W] and ``log f`` [N, W] at temperature 1, from ``logits`` [N, W, V]."""
        if self.temperature <= 0:
            return model.pick_tokens(logits, 0.0)
        flat = logits.reshape(-1, logits.size(-1))
        tokens = torch.empty(flat.size(0), dtype=torch.long, device=logits.device)
        for part in model._row_chunks(flat):
            x = typical_filter(model.restrict(flat[part]) / self.temperature, self.typical_mass)
            tokens[part] = torch.multinomial(F.softmax(x, -1), 1, generator=generator).squeeze(1)
        tokens = tokens.view(logits.shape[:-1])
        return tokens, model.token_logp(logits, tokens)

    def step(self, model, encoder_out, state, step, num_steps, generator=None):
        in_canvas = state.tokens.ne(model.pad)
        fixed = state.extra.get("fixed")  # template positions: always m = 1
        alpha = coconet_alpha(step, num_steps)
        u = torch.rand(state.tokens.shape, device=state.tokens.device, generator=generator)
        masked = (u < alpha) & in_canvas
        if fixed is not None:
            masked &= ~fixed
        logits = model.canvas_logits(state.tokens, encoder_out, state.extra["length_d"], ~masked & in_canvas)
        proposal, logp = self.sample_tokens(model, logits, generator)
        p = accept_probability(step, num_steps, self.accept_lo, self.accept_hi)
        if p < 1.0:
            masked = masked & (torch.rand(masked.shape, device=masked.device, generator=generator) < p)
        tokens = torch.where(masked, proposal, state.tokens)
        if fixed is not None:
            tokens = respect_template(tokens, state.tokens, fixed, state.extra["no_end"], model.end)
        scores = torch.where(masked & tokens.eq(proposal), logp, state.scores).masked_fill(~in_canvas, 0.0)
        return CanvasState(tokens, scores, state.lengths, tokens.ne(state.tokens).any(1),
                           {"length_d": state.extra["length_d"]})
