"""PyTorch reference for joint-Viterbi decoding of DA-Transformer (Shao et al., 2022).

Joint-Viterbi picks the path a from vertex 0 to P_b - 1 with |a| <= max_length maximising
    (sum links along a + sum_i token_logprobs[a_i]) / n(a)^beta,
n(a) = |a| vertices (``length_norm="vertices"``, the default) or max(1, |a| - 1)
transitions (``"transitions"``, the DA-Transformer reference's rule).
The length normalisation is not decomposable, so the DP keeps the best raw score
for every (length k, vertex j):
    delta_k[j] = max_i delta_{k-1}[i] + links[i, j] + token_logprobs[j],
and the length is chosen at the end.  O(L * P^2) per sentence; step k only
touches vertices >= k - 1 (a k-vertex path cannot end earlier) and only the
strict upper triangle, about a sixth of L * P^2 for L = P.
"""
from typing import Optional, Tuple

import torch

from .dag_common_torch import acc_dtype, masked_links
from .dag_maxplus_torch import MaxPlus

__all__ = ["dag_viterbi_torch"]


@torch.no_grad()
def dag_viterbi_torch(
    links: torch.Tensor,
    token_logprobs: Optional[torch.Tensor],
    output_length: torch.Tensor,
    max_length: torch.Tensor,
    beta: float = 1.0,
    length_norm: str = "vertices",
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Joint-Viterbi decoding, reference implementation (Shao et al. 2022, "Viterbi Decoding of DAT").

    Inputs are assumed validated by ``dag_checks.check_viterbi_inputs``.

    Args:
        links: ``[B, P, P]`` log P(v_j | v_i), read only for ``i < j < P_b``.
        token_logprobs: ``[B, P]`` log-prob of the chosen token per vertex, or None (zeros).
        output_length: ``[B]`` long ``P_b``.
        max_length: ``[B]`` long, ``1 <= L_b <= P_b``: most vertices a path may have.
        beta: length-normalisation exponent.
        length_norm: ``"transitions"`` (divide by ``max(1, |a| - 1)^beta``) or ``"vertices"`` (``|a|^beta``).

    Returns:
        ``vertices [B, L]`` long padded with -1, ``lengths [B]`` long, ``scores [B]`` float
        (normalised, ``links.dtype``).  A sentence without a finite path within
        ``L_b`` vertices gets length 0, all -1 and score ``-inf``.
    """
    B, P, _ = links.shape
    dev = links.device
    P_len = output_length.to(dev, torch.long)
    M_len = max_length.to(dev, torch.long)
    dt = acc_dtype(links.dtype)
    mp = MaxPlus(masked_links(links, P_len, dt))
    j = torch.arange(P, device=dev)
    valid = j.unsqueeze(0) < P_len.unsqueeze(1)
    if token_logprobs is None:
        tok = torch.zeros((B, P), dtype=dt, device=dev)
    else:
        tok = token_logprobs.to(dt)
    tok = torch.where(valid, tok, torch.full_like(tok, float("-inf")))
    Lmax = int(M_len.max())
    Pmax = int(P_len.max())
    delta = torch.full((B, Lmax, P), float("-inf"), dtype=dt, device=dev)
    delta[:, 0, 0] = tok[:, 0]
    for k in range(1, Lmax):
        mp.step(delta[:, k - 1], delta[:, k], k - 1, Pmax - 1, k, Pmax)
        delta[:, k] += tok
    rows = torch.arange(B, device=dev)
    ends = delta[rows, :, P_len - 1]  # [B, Lmax]: best raw score per path length
    n_vertices = torch.arange(1, Lmax + 1, device=dev, dtype=dt)
    divisor = (n_vertices - 1).clamp(min=1) if length_norm == "transitions" else n_vertices
    norm = ends / divisor.pow(float(beta))
    norm = norm.masked_fill(n_vertices.unsqueeze(0) > M_len.unsqueeze(1), float("-inf"))
    scores, best_k = norm.max(dim=1)
    found = torch.isfinite(scores)
    lengths = torch.where(found, best_k + 1, torch.zeros_like(best_k))
    L_out = max(1, int(lengths.max()))
    verts = torch.full((B, L_out + 1), -1, dtype=torch.long, device=dev)
    v = P_len - 1
    for k in range(L_out - 1, -1, -1):
        active = found & (k <= best_k)
        verts[rows, torch.where(active, k, L_out)] = torch.where(active, v, -1)
        if k > 0:
            v = torch.where(active, mp.argmax_into(delta[:, k - 1], v), v)
    return verts[:, :L_out], lengths, scores.to(links.dtype)
