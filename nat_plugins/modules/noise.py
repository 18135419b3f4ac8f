"""Training-time corruption of target sequences, shared by the NAT models.

Every function takes ``target`` [B, L] (padded with ``pad``) and a boolean
``real`` [B, L] marking the positions that hold real target tokens (no
padding, no ``<bos>``/``<eos>``), and never modifies its inputs.
"""
import torch

__all__ = ["uniform_mask"]


def uniform_mask(target, real, mask_idx, generator=None):
    """Mask-Predict's masking (Ghazvininejad et al. 2019, §3.1).

    For each sentence with ``n`` real tokens, ``k ~ Uniform{1, ..., n}``
    tokens are chosen uniformly at random and replaced by ``mask_idx``.

    Returns:
        (noised [B, L] long, masked [B, L] bool)
    """
    n = real.sum(1)  # [B]
    u = torch.rand(target.shape, device=target.device, generator=generator)
    # Non-real positions sort last so they are never picked.
    u = u.masked_fill(~real, 2.0)
    ranks = u.argsort(1).argsort(1)
    k = (torch.rand(n.shape, device=target.device, generator=generator) * n).long() + 1
    k = torch.minimum(k, n)
    masked = (ranks < k.unsqueeze(1)) & real
    return target.masked_fill(masked, mask_idx), masked
