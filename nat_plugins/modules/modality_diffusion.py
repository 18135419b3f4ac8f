"""DiffGLAT's diffusion processes: the intermediate target of each transition
(Qian et al. 2023, "Diffusion Glancing Transformer for Parallel Sequence-to-Sequence
Learning", §3.1 and Appendix E; D3PM baselines: Austin et al. 2021, §3).

Time indexing (the one place it is written down)
-------------------------------------------------
A DiffGLAT decoder makes ``T`` transitions (``T = iterations x layer groups``).
Generation goes ``y_T`` (the position-only canvas) -> ``y_{T-1}`` -> ... -> ``y_0``.
Transition ``k`` (``k = 0 .. T-1``, generation order) reads level ``t = T - k`` and
produces level ``t - 1``; its training target is ``~y_{t-1}`` and the last transition
(``k = T - 1``, ``t = 1``) is trained on the data ``y_0``.
See :func:`transition_of_level` / :func:`level_of_transition`.

Modality diffusion (§3.1 eq. 8-9, simplified as Appendix E eq. 24)
------------------------------------------------------------------
``q(y_{t-1} | y_t, y_0) = gamma_{t-1} P_{t-2} + (1 - gamma_{t-1}) P_{t-2} * onehot(y_0)``,
with ``P_{t-2}`` the model's own *next* prediction ``p(y_{t-2} | y_{t-1})`` (the output
of the transition after the one trained) and the target ``~y_{t-1} = argmax_w q`` per
position (§3.3 "Training").  For ``w != y_0`` the interpolated mass is
``gamma * P(w)``, for ``y_0`` it is ``P(y_0)``, so

    ~y_{t-1} = y_0  if  P(y_0) >= gamma * max_w P(w)  else  argmax_w P(w)

(:func:`modality_target`, computed in log space; ties go to ``y_0``).  ``gamma -> 0``
gives ``y_0``, ``gamma = 1`` the model's argmax.

**The gamma rule** (Appendix E): ``gamma_{t-1}`` is the largest value of a
predefined set whose target keeps at least 90% of the tokens of ``y_0 * y_t``, where
``y_t`` is **the previous level's target** ``~y_t`` (the paper's ``y_t``, a sample
of ``q``; not the model's previous output ``^y_t``, which eq. 12 uses for glancing
only).  So ``~y_{t-1}`` keeps most of what ``~y_t`` already shares with the data,
and the targets draw nearer ``y_0`` as ``t`` falls (:func:`choose_gamma`).

**The first transition** (our explicit rule; the paper gives none).  Its input
level ``y_T`` is the position-only canvas in the generative process (§3.2), which
holds no content token, so ``y_0 * y_T`` is empty, the rule holds for every ``gamma``, and
``gamma_{T-1} = 1`` always: the first intermediate target would be the model's own
argmax, whatever the data.  We read ``~y_T`` from the posterior instead: eq. 8 at
``t = T``, ``q(y_T | y_0) = (gamma_T 1 + (1 - gamma_T) y_0) * P_{T-1} / Z_T``, with
``gamma_T = 1`` (no level above ``T`` constrains it, and 1 is the set's largest
value, the choice the rule makes when unconstrained).  So ``~y_T = argmax P_{T-1}``,
the first transition's own prediction, and ``gamma_{T-1}`` must keep 90% of the
tokens the first transition already gets right (:func:`first_level_target`).

**Where P is read** (§3.3 eq. 13).  On a DA-Transformer graph ``P_{t-2}`` lives on
vertices, not target positions: it is read at the vertices of the best alignment of
the *intermediate target* ``~y_t`` to ``P_{t-2}``'s graph (eq. 13 aligns ``~y_t``,
not ``y_0``); ``~y_T`` itself, which has no intermediate target above it, is read
at ``y_0``'s alignment.  Another reading of eq. 13's ``p_t`` (the graph that
produced level ``t``) would align ``~y_t`` to the previous transition's graph and
read ``P_{t-2}`` at those vertices; we align to the graph being read, so the read
vertices are ones that distribution's own links route through.
:func:`modality_chain` runs the whole recursion, ``~y_T -> ~y_{T-1} -> ...``, with a
caller-supplied reader.

**mu = 1/T** (Appendix E: "the hyper-parameter of glancing schedule mu = 1/T").
The paper does not define mu further.  Our reading: the layer-wise glancing
schedule, i.e. the probability that a given transition is the one glanced (and
trained) in a step.  One diffusion level is sampled per step (§3.3 "Training"),
each with probability ``mu = 1/T`` (:func:`level_distribution`).

D3PM baselines (Table 6 ablation)
---------------------------------
Absorbing (``<unk>`` as the mask) and uniform D3PM with ``beta_s = 1 / (T - s + 1)``.
Both keep a token through steps ``1..t`` with probability

    prod_{s=1..t} (1 - beta_s) = prod_{s=1..t} (T - s) / (T - s + 1) = (T - t) / T,

(a telescoping product): for absorbing this is the probability of never being
masked; for uniform it is ``alpha_bar_t`` of ``Q_bar_t = alpha_bar_t I +
(1 - alpha_bar_t) 11^T / K`` (the token is redrawn uniformly with probability
``1 - alpha_bar_t``, possibly to itself).  So ``q(y_{t-1} | y_0)`` corrupts each token
independently with probability ``(t - 1) / T`` (:func:`d3pm_corruption_rate`); the
target of the transition producing level ``t - 1`` is one sample of it
(:func:`nat_plugins.modules.noise.d3pm_corruption`).
"""
import torch

__all__ = [
    "DEFAULT_GAMMAS", "transition_of_level", "level_of_transition", "modality_target", "choose_gamma",
    "first_level_target", "modality_chain", "level_distribution", "d3pm_corruption_rate",
]

#: The predefined interpolation set (Appendix E gives no values; 0.1 steps over (0, 1]).
DEFAULT_GAMMAS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


def transition_of_level(t, num_transitions):
    """Transition index ``k`` (generation order) that reads level ``t`` and produces ``t - 1``."""
    if not 1 <= t <= num_transitions:
        raise ValueError(f"diffusion level {t} outside 1..{num_transitions}")
    return num_transitions - t


def level_of_transition(k, num_transitions):
    """Level ``t`` read by transition ``k``; the transition produces level ``t - 1``."""
    if not 0 <= k < num_transitions:
        raise ValueError(f"transition {k} outside 0..{num_transitions - 1}")
    return num_transitions - k


def _target_margin(next_logprobs, y0):
    """``log P(y_0) - max_w log P(w)`` per position: ``[B, T, V], [B, T] -> [B, T]`` (<= 0)."""
    lp = next_logprobs.float()
    return lp.gather(-1, y0.unsqueeze(-1)).squeeze(-1) - lp.max(-1).values


def modality_target(next_logprobs, y0, gamma):
    """The intermediate target ``~y_{t-1} = argmax [gamma P + (1 - gamma) P * onehot(y_0)]`` (eq. 24).

    Args:
        next_logprobs: ``[B, T, V]`` log ``P_{t-2}`` read at the target's positions.
        y0: ``[B, T]`` long data target.
        gamma: float or ``[B]`` tensor in ``(0, 1]``.
    Returns:
        ``[B, T]`` long: ``y0`` where ``log P(y0) >= log gamma + max log P``, else ``argmax P``.
    """
    log_gamma = torch.log(torch.as_tensor(gamma, dtype=torch.float32, device=y0.device))
    if log_gamma.dim() == 1:
        log_gamma = log_gamma[:, None]
    keep = _target_margin(next_logprobs, y0) >= log_gamma
    return torch.where(keep, y0, next_logprobs.argmax(-1))


def choose_gamma(next_logprobs, y0, prev_target, real, gammas=DEFAULT_GAMMAS, keep=0.9):
    """Per sentence, the largest ``gamma`` in ``gammas`` whose target keeps >= ``keep`` of ``y_0 * ~y_t``.

    "Already correct" positions are the real positions where the previous level's
    target ``~y_t`` equals ``y_0``; a position is kept when ``~y_{t-1}``
    (:func:`modality_target`) is ``y_0`` there.  Smaller ``gamma`` keeps more, so:

    * a sentence with no already-correct position takes the largest ``gamma`` (the
      constraint holds vacuously);
    * if even the smallest ``gamma`` keeps less than ``keep``, the smallest is used
      (the closest to the rule the set allows).

    Args:
        next_logprobs: ``[B, T, V]``; y0, prev_target: ``[B, T]`` long; real: ``[B, T]`` bool.
        gammas: the predefined set (any order, values in ``(0, 1]``).
        keep: required share of already-correct tokens kept.
    Returns:
        ``[B]`` float32 ``gamma``.
    """
    values = torch.tensor(sorted(gammas, reverse=True), dtype=torch.float32, device=y0.device)  # [G]
    if values.numel() == 0 or values.min() <= 0 or values.max() > 1:
        raise ValueError(f"gamma set {tuple(gammas)}: values must lie in (0, 1]")
    margin = _target_margin(next_logprobs, y0)  # [B, T]
    already = real & prev_target.eq(y0)  # [B, T]
    kept = (margin[None] >= torch.log(values)[:, None, None]) & already[None]  # [G, B, T]
    n_already = already.sum(1).float()  # [B]
    ok = kept.sum(2).float() >= keep * n_already[None] - 1e-6  # [G, B]
    ok[-1] = True  # fall back to the smallest gamma
    first_ok = ok.float().argmax(0)  # largest gamma satisfying the rule (values sorted descending)
    return values[first_ok]


def first_level_target(first_logprobs, y0, real):
    """``~y_T = argmax q(y_T | y_0)`` with ``gamma_T = 1`` (module docstring, "The first transition").

    Args:
        first_logprobs: ``[B, T, V]`` log ``P_{T-1}``, the first transition's distribution
            read at ``y_0``'s alignment.
        y0: ``[B, T]``; real: ``[B, T]`` bool (``y_0`` is kept where false).
    Returns:
        ``[B, T]`` long: the first transition's argmax (ties to ``y_0``) at real positions.
    """
    return torch.where(real, modality_target(first_logprobs, y0, 1.0), y0)


def modality_chain(read, y0, real, steps, gammas=DEFAULT_GAMMAS, keep=0.9):
    """The intermediate targets ``~y_T, ~y_{T-1}, ..., ~y_{T-steps}`` (eq. 24 with the gamma rule).

    Args:
        read: ``read(j, target) -> (logprobs [B, T, V], usable [B] bool)``: transition
            ``j``'s token distribution (``P_{T-1-j}``) read at the vertices of ``target``'s
            best alignment to transition ``j``'s graph (eq. 13); ``usable`` is false for a
            sentence without such an alignment.  Called for ``j = 0 .. steps`` in order,
            with ``target = y_0`` for ``j = 0`` and then each new intermediate target.
        y0: ``[B, T]`` long data; real: ``[B, T]`` bool, the positions a target may change.
        steps: ``n >= 1``; the last target ``~y_{T-n}`` is that of transition ``n - 1``.
        gammas, keep: the gamma rule (:func:`choose_gamma`).
    Returns:
        ``(targets, gammas)``: ``n + 1`` targets ``[B, T]`` (``~y_T`` first) and the ``n``
        chosen ``[B]`` ``gamma_{T-1} .. gamma_{T-n}``.  A sentence that is not usable at a
        step gets ``y_0`` there.
    """
    if steps < 1:
        raise ValueError(f"modality chain of {steps} steps: needs at least 1")
    logprobs, usable = read(0, y0)
    targets, chosen = [first_level_target(logprobs, y0, real & usable[:, None])], []
    for j in range(1, steps + 1):
        logprobs, usable = read(j, targets[-1])
        ok = real & usable[:, None]
        gamma = choose_gamma(logprobs, y0, targets[-1], ok, gammas, keep)
        targets.append(torch.where(ok, modality_target(logprobs, y0, gamma), y0))
        chosen.append(gamma)
    return targets, chosen


def level_distribution(num_transitions):
    """``[T]`` float64: the probability of training level ``t = 1 .. T`` in a step, ``mu = 1/T`` each."""
    if num_transitions < 1:
        raise ValueError(f"{num_transitions} transitions: needs at least 1")
    return torch.full((num_transitions,), 1.0 / num_transitions, dtype=torch.float64)


def d3pm_corruption_rate(t, num_transitions):
    """Probability that a token of ``y_{t-1}`` is corrupted: ``(t - 1) / T`` (module docstring)."""
    if not 1 <= t <= num_transitions:
        raise ValueError(f"diffusion level {t} outside 1..{num_transitions}")
    return (t - 1) / num_transitions

