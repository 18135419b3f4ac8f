"""Random tiny DAG batches for the ops tests."""
import torch


def random_batch(P_len, T_len, T=None, P=None, dtype=torch.float64, seed=0, link_scale=1.0, neg_inf_frac=0.0,
                 pad_value=float("nan")):
    """match [B,T,P] (log-softmax over tokens is irrelevant: any reals), links [B,P,P] finite for j>i.

    Padding (j >= P_b, t >= T_b, j <= i) is filled with ``pad_value`` so tests catch any read of it.
    """
    g = torch.Generator().manual_seed(seed)
    P_len = torch.tensor(P_len)
    T_len = torch.tensor(T_len)
    B = len(P_len)
    P = P or int(P_len.max())
    T = T or int(T_len.max())
    match = torch.randn(B, T, P, generator=g, dtype=torch.float64) - 1.0
    links = torch.randn(B, P, P, generator=g, dtype=torch.float64) * link_scale - 1.0
    if neg_inf_frac:
        links = links.masked_fill(torch.rand(B, P, P, generator=g, dtype=torch.float64) < neg_inf_frac,
                                  float("-inf"))
    ar = torch.arange(P)
    edge = (ar[:, None] < ar[None, :])[None] & (ar.view(1, 1, P) < P_len.view(B, 1, 1))
    links = links.masked_fill(~edge, pad_value)
    keep = (torch.arange(T).view(1, T, 1) < T_len.view(B, 1, 1)) & (ar.view(1, 1, P) < P_len.view(B, 1, 1))
    match = match.masked_fill(~keep, pad_value)
    return match.to(dtype), links.to(dtype), P_len, T_len


def clean(x):
    """Padding NaNs -> 0 so brute-force autograd (which never reads them) compares cleanly; -inf stays."""
    return torch.where(torch.isnan(x), torch.zeros_like(x), x)
