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

Modality diffusion (§3.1 eq. 8, simplified as Appendix E eq. 24)
------------------------------------------------------------------
``q(y_{t-1} | y_t, y_0) = gamma * P_{t-2} + (1 - gamma) * P_{t-2} * onehot(y_0)``, with
``P_{t-2}`` the model's own *next* prediction ``p(y_{t-2} | y_{t-1})`` and the target
``~y_{t-1} = argmax_w q`` per position (§3.3 "Training").  For ``w != y_0`` the
interpolated mass is ``gamma * P(w)``, for ``y_0`` it is ``P(y_0)``, so

    ~y_{t-1} = y_0  if  P(y_0) >= gamma * max_w P(w)  else  argmax_w P(w)

(:func:`modality_target`, computed in log space; ties go to ``y_0``).  ``gamma -> 0``
gives ``y_0``, ``gamma = 1`` the model's argmax.  ``gamma`` is chosen per sentence
from a predefined set as the largest value that keeps at least 90% of the tokens the
previous output ``^y_t`` already has right (:func:`choose_gamma`, Appendix E).

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
    "d3pm_corruption_rate",
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


def choose_gamma(next_logprobs, y0, prev_output, real, gammas=DEFAULT_GAMMAS, keep=0.9):
    """Per sentence, the largest ``gamma`` in ``gammas`` whose target keeps >= ``keep`` of ``y_0 * ^y_t``.

    "Already correct" positions are the real positions where the previous output
    ``^y_t`` equals ``y_0``; a position is kept when ``~y_{t-1}`` (:func:`modality_target`)
    is ``y_0`` there.  Smaller ``gamma`` keeps more, so:

    * a sentence with no already-correct position takes the largest ``gamma`` (the
      constraint holds vacuously: its target is then the model's own argmax wherever
      ``y_0`` is not already the argmax);
    * if even the smallest ``gamma`` keeps less than ``keep``, the smallest is used
      (the closest to the rule the set allows).

    Args:
        next_logprobs: ``[B, T, V]``; y0, prev_output: ``[B, T]`` long; real: ``[B, T]`` bool.
        gammas: the predefined set (any order, values in ``(0, 1]``).
        keep: required share of already-correct tokens kept.
    Returns:
        ``[B]`` float32 ``gamma``.
    """
    values = torch.tensor(sorted(gammas, reverse=True), dtype=torch.float32, device=y0.device)  # [G]
    if values.numel() == 0 or values.min() <= 0 or values.max() > 1:
        raise ValueError(f"gamma set {tuple(gammas)}: values must lie in (0, 1]")
    margin = _target_margin(next_logprobs, y0)  # [B, T]
    already = real & prev_output.eq(y0)  # [B, T]
    kept = (margin[None] >= torch.log(values)[:, None, None]) & already[None]  # [G, B, T]
    n_already = already.sum(1).float()  # [B]
    ok = kept.sum(2).float() >= keep * n_already[None] - 1e-6  # [G, B]
    ok[-1] = True  # fall back to the smallest gamma
    first_ok = ok.float().argmax(0)  # largest gamma satisfying the rule (values sorted descending)
    return values[first_ok]


def d3pm_corruption_rate(t, num_transitions):
    """Probability that a token of ``y_{t-1}`` is corrupted: ``(t - 1) / T`` (module docstring)."""
    if not 1 <= t <= num_transitions:
        raise ValueError(f"diffusion level {t} outside 1..{num_transitions}")
    return (t - 1) / num_transitions

