"""PyTorch reference for the DA-Transformer best alignment (Huang et al., ICML 2022, §2.3, §3 glancing).

Viterbi over the same lattice as the likelihood, with max instead of logsumexp:
    delta_t[j] = max_i delta_{t-1}[i] + links[i, j] + match[t, j],
then a backtrace from (T_b - 1, P_b - 1).  Vectorised over batch and vertices;
only the T steps loop in Python.
"""
import torch

from .dag_common_torch import acc_dtype, masked_links, masked_match
from .dag_maxplus_torch import MaxPlus

__all__ = ["dag_best_alignment_torch"]


@torch.no_grad()
def dag_best_alignment_torch(
    match: torch.Tensor, links: torch.Tensor, output_length: torch.Tensor, target_length: torch.Tensor
) -> torch.Tensor:
    """Target index aligned to each vertex on the most probable path (reference implementation).

    Inputs are assumed validated by ``dag_checks.check_dag_inputs``.

    Args:
        match: ``[B, T, P]`` log P(y_t | v_j).
        links: ``[B, P, P]`` log P(v_j | v_i), read only for ``i < j < P_b``.
        output_length: ``[B]`` long ``P_b``; target_length: ``[B]`` long ``T_b``.

    Returns:
        ``[B, P]`` long: ``t`` for the vertex at step ``t`` of the best ``T_b``-vertex path,
        ``-1`` elsewhere; all ``-1`` for a sentence without any finite path.
    """
    B, T, P = match.shape
    dev = match.device
    P_len = output_length.to(dev, torch.long)
    T_len = target_length.to(dev, torch.long)
    dt = acc_dtype(match.dtype)
    mp = MaxPlus(masked_links(links, P_len, dt))
    m = masked_match(match, P_len, T_len, dt)
    delta = torch.full((B, T, P), float("-inf"), dtype=dt, device=dev)
    delta[:, 0, 0] = m[:, 0, 0]
    D = int((P_len - T_len).max())  # step t only touches vertices t .. t + D
    for t in range(1, int(T_len.max())):
        mp.step(delta[:, t - 1], delta[:, t], t - 1, min(P, t + D), t, min(P, t + D + 1))
        delta[:, t] += m[:, t]
    rows = torch.arange(B, device=dev)
    v = P_len - 1
    found = torch.isfinite(delta[rows, T_len - 1, v])
    # Column P is a sink for sentences not (yet) on their path: no host sync, no masking.
    align = torch.full((B, P + 1), -1, dtype=torch.long, device=dev)
    for t in range(int(T_len.max()) - 1, -1, -1):
        active = found & (t <= T_len - 1)
        align[rows, torch.where(active, v, P)] = t
        if t > 0:
            v = torch.where(active, mp.argmax_into(delta[:, t - 1], v), v)
    return align[:, :P]
