"""Masking helpers shared by the PyTorch reference DAG ops.

Every op works on padded batches; rather than trusting the padding (which may
hold garbage, even NaN), each op first builds copies in which everything that
is not part of sentence ``b``'s graph is ``-inf``.  After that the dynamic
programs need no per-sentence special cases.
"""
import torch

__all__ = ["masked_links", "masked_match", "acc_dtype", "NEG_INF"]

NEG_INF = float("-inf")


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """DP dtype for max-plus programs: fp32, or fp64 when the input already is."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def masked_links(links: torch.Tensor, output_length: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Copy of ``links`` [B, P, P] in ``dtype`` with ``-inf`` outside ``i < j < P_b``.

    Entries with ``j <= i`` are masked even though the API says they are not
    finite: the ops must not depend on how the caller filled them.
    """
    B, P, _ = links.shape
    ar = torch.arange(P, device=links.device)
    keep = (ar[:, None] < ar[None, :]).unsqueeze(0) & (ar.view(1, 1, P) < output_length.view(B, 1, 1))
    out = links.to(dtype=dtype, copy=True)
    out.masked_fill_(~keep, NEG_INF)
    return out


def masked_match(
    match: torch.Tensor, output_length: torch.Tensor, target_length: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """Copy of ``match`` [B, T, P] in ``dtype`` with ``-inf`` outside ``t < T_b, j < P_b``.

    Steps past ``T_b`` then carry no probability mass, so running the DP to the
    batch's longest target is harmless for shorter sentences.
    """
    B, T, P = match.shape
    keep = (torch.arange(T, device=match.device).view(1, T, 1) < target_length.view(B, 1, 1)) & (
        torch.arange(P, device=match.device).view(1, 1, P) < output_length.view(B, 1, 1)
    )
    out = match.to(dtype=dtype, copy=True)
    out.masked_fill_(~keep, NEG_INF)
    return out
