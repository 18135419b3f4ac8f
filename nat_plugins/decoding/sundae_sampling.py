"""SUNDAE decoding (Savinov et al. 2022, §2.2 and §3.1 "Decoding").

Both strategies start from the uniform prior p0: uniform random tokens
(over the model's noise symbols, see :mod:`nat_plugins.models.sundae`) on
the canvas of each length candidate (:meth:`SUNDAEModel.initial_canvas`),
and run ``T = --decode-iterations`` steps of the Markov chain
``y_t ~ f_theta(. | y_{t-1})``:

* ``sundae_sample`` (the family default): low-temperature sampling,
  ``log f^tau ∝ log f / tau`` with ``tau = --decode-temperature`` (the paper
  tunes tau in [0.1, 0.6]; the model's default is 0.5, and ``n`` =
  ``--decode-samples`` defaults to the model's 16 or, CPU archs, 4; ``0``
  gives plain argmax);
* ``sundae_argmax_unrolled``: argmax-unrolled decoding with
  ``rho = --argmax-unrolled-rho`` (see :class:`SundaeArgmaxUnrolled`).

Shared options:

* ``--sundae-update-proportion p`` (§2.2 "Updating fewer tokens"): at each
  step only a random subset of the canvas positions takes its new value,
  each position independently with probability ``p`` (the paper does not
  say how the subset is drawn);
* ``--decode-early-stop``: a row whose step changed nothing has reached a
  fixed point of the (low-temperature) chain and is frozen, as the paper's
  Table 5 converges after 3 steps.  Because SUNDAE's sampling is a chain
  whose fixed points are the point, this strategy honours early stop even
  when sampling (the generator otherwise disables it for stochastic
  strategies);
* ``--decode-samples n`` candidates per length (``--length-beam``) are decoded
  in parallel and reranked by the *model score* (§3.1, App. E): the
  candidate, read out (:meth:`SUNDAEModel.read_out`: its ``<eos>`` positions
  dropped, or for earlier checkpoints cut at the first ``<eos>``) and laid on
  the canvas as a gold target would be, is fed back as input and scored by
  its mean log-probability under ``f_theta(. | candidate)`` (minus the
  cross-entropy).  That is :meth:`finalize`'s score, which the generator
  ranks by (one extra decoder pass);
* ``--decode-seed`` seeds the prior, sampling and subsets (reproducible);
* ``--retain-iter-history --print-step`` prints every step's canvas (the
  paper's Table 5).

Cost in decoder passes per candidate: ``T + 1`` for sampling (the last one
scores the candidate for reranking); ``2T`` for argmax-unrolled decoding
with ``rho > 0`` (step 1 one pass, every later step two, plus the score).
No strategy keeps a [N, W, V] softmax or log-softmax next to the logits:
tokens and their log-probabilities are computed per chunk of positions
(:meth:`SUNDAEModel.pick_tokens`, :meth:`SUNDAEModel.token_logp`), with
the same bits as the whole-tensor computation.
"""
import torch

from .strategy import CanvasState, DecodingStrategy, register_strategy
from .templates import respect_template

__all__ = ["SundaeSample", "SundaeArgmaxUnrolled", "random_subset", "least_certain"]


def random_subset(in_canvas, proportion, generator=None):
    """[N, W] bool: each canvas position independently with probability ``proportion``."""
    if proportion >= 1.0:
        return in_canvas
    u = torch.rand(in_canvas.shape, device=in_canvas.device, generator=generator)
    return (u < proportion) & in_canvas


def least_certain(confidence, in_canvas, rho):
    """[N, W] bool: the ``floor(rho * width)`` canvas positions of each row with
    the lowest ``confidence`` (log-probability of the current token)."""
    width = in_canvas.sum(1)
    count = torch.floor(width.float() * rho).long()
    order = confidence.masked_fill(~in_canvas, float("inf")).argsort(1)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.size(1), device=order.device).expand_as(order))
    return (rank < count[:, None]) & in_canvas


class _SundaeBase(DecodingStrategy):
    families = ("sundae",)
    #: takes ``--decode-templates`` (decoding/templates.py): fixed tokens are kept at every step (§2.2)
    accepts_templates = True

    def __init__(self, options):
        super().__init__(options)
        self.update_proportion = float(options.extra.get("sundae_update_proportion", 1.0))
        if not 0.0 < self.update_proportion <= 1.0:
            from ..errors import NATUserError

            raise NATUserError(f"--sundae-update-proportion must be in (0, 1], got {self.update_proportion}")

    def initialize(self, model, encoder_out, lengths, generator=None, template=None):
        tokens, length_d = model.initial_canvas(lengths, generator=generator)
        extra = {"length_d": length_d}
        if template is not None:  # infilling (§2.2): fixed tokens on the prior canvas
            tokens, extra["fixed"], extra["no_end"] = template.apply(
                tokens, end=model.end, pad=model.pad, free_symbols=model.noise_symbols, generator=generator)
        scores = tokens.new_zeros(tokens.shape, dtype=torch.float)
        return CanvasState(tokens, scores, lengths, extra=extra)

    def _propose(self, model, encoder_out, state, step, generator):
        """New tokens [N, W] and their log-probs [N, W] under f(. | y_{t-1})."""
        raise NotImplementedError

    def step(self, model, encoder_out, state, step, num_steps, generator=None):
        in_canvas = state.tokens.ne(model.pad)
        proposal, logp, extra = self._propose(model, encoder_out, state, step, generator)
        update = random_subset(in_canvas, self.update_proportion, generator)
        tokens = torch.where(update, proposal, state.tokens)
        if "fixed" in state.extra:  # infilling: fixed tokens kept, free template positions never end the text
            tokens = respect_template(tokens, state.tokens, state.extra["fixed"], state.extra["no_end"], model.end)
            update = update & tokens.eq(proposal)
        scores = torch.where(update, logp, state.scores).masked_fill(~in_canvas, 0.0)
        changed = tokens.ne(state.tokens).any(1)
        return CanvasState(tokens, scores, state.lengths, changed, {"length_d": state.extra["length_d"], **extra})

    def history_entry(self, model, state):
        # Every step read out as the output is (the paper's Table 5 shows text, not canvases).
        lengths, cleaned = model.read_out(state.tokens)
        return cleaned, lengths

    def finalize(self, model, encoder_out, state):
        lengths, cleaned = model.read_out(state.tokens)
        pos_logp, score = model.model_score(cleaned, encoder_out, state.extra["length_d"])
        return cleaned, pos_logp, lengths, score


@register_strategy
class SundaeSample(_SundaeBase):
    """Low-temperature sampling ``y_t ~ f^tau(. | y_{t-1})`` (§2.2, §3.1)."""

    name = "sundae_sample"

    def __init__(self, options):
        super().__init__(options)
        self.temperature = float(options.temperature)
        # Early stop is a fixed-point test for this chain (module docstring);
        # argmax (tau = 0) is deterministic anyway.
        self.stochastic = self.temperature > 0 and not options.early_stop

    def _propose(self, model, encoder_out, state, step, generator):
        logits = model.canvas_logits(state.tokens, encoder_out, state.extra["length_d"])
        tokens, logp = model.pick_tokens(logits, self.temperature, generator=generator)
        return tokens.masked_fill(state.tokens.eq(model.pad), model.pad), logp, {}


@register_strategy
class SundaeArgmaxUnrolled(_SundaeBase):
    """Argmax-unrolled decoding (§3.1 "Decoding"), deterministic.

    Step 1: ``lambda_1 = f(. | y_0)``, ``y_1 = argmax lambda_1``.
    Step t >= 2: the top-``rho`` share of positions that were least certain
    under ``lambda_{t-1}`` (lowest log-probability of their token ``y_{t-1}``)
    are "uncertain".  ``lambda_t = f(. | y_{t-1})`` gives the *predicted
    tokens* ``argmax lambda_t``; the *unrolled logits* are one more step of
    the chain, ``f(. | argmax lambda_t)`` (what the L(2) "unrolled logits"
    loss trains), and their argmax gives the *unrolled tokens*.  ``y_t``
    takes unrolled tokens at uncertain positions and predicted tokens
    elsewhere, and ``(y_t, lambda_t)`` goes on to the next step.

    The unrolled logits need a full extra decoder pass (a non-causal decoder
    cannot compute a subset of positions alone), so a step costs two passes
    when ``rho > 0``; with ``rho = 0`` no position is uncertain, the extra
    pass is skipped and the strategy is exactly plain argmax decoding.
    """

    name = "sundae_argmax_unrolled"
    default = False

    def __init__(self, options):
        super().__init__(options)
        self.rho = float(options.extra.get("argmax_unrolled_rho", 0.3))
        if not 0.0 <= self.rho <= 1.0:
            from ..errors import NATUserError

            raise NATUserError(f"--argmax-unrolled-rho must be in [0, 1], got {self.rho}")

    def _propose(self, model, encoder_out, state, step, generator):
        length_d = state.extra["length_d"]
        in_canvas = state.tokens.ne(model.pad)
        logits = model.canvas_logits(state.tokens, encoder_out, length_d)
        predicted, logp = model.pick_tokens(logits, 0.0)
        predicted = predicted.masked_fill(~in_canvas, model.pad)
        tokens = predicted
        if step > 0 and self.rho > 0:
            # state.scores hold log lambda_{t-1}(y_{t-1}): the certainty of the
            # current tokens under the previous step's logits.
            uncertain = least_certain(state.scores, in_canvas, self.rho)
            if uncertain.any():
                unrolled = model.pick_tokens(model.canvas_logits(predicted, encoder_out, length_d), 0.0)[0]
                tokens = torch.where(uncertain, unrolled, predicted)
                # The next step ranks certainty by lambda_t of the chosen tokens.
                logp = model.token_logp(logits, tokens)
        return tokens, logp, {}
