"""Training-time corruption of target sequences, shared by the NAT models.

Every function takes ``target`` [B, L] (padded with ``pad``) and a boolean
``real`` [B, L] marking the positions that hold real target tokens (no
padding, no ``<bos>``/``<eos>``), and never modifies its inputs.
"""
import torch

__all__ = ["uniform_mask", "uniform_corruption", "uniform_random_tokens", "d3pm_corruption", "vocabulary_symbols"]


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


def uniform_random_tokens(shape, symbols, generator=None, device=None):
    """Tokens drawn i.i.d. uniformly from ``symbols`` (SUNDAE's prior p0, §2).

    Args:
        shape: output shape, e.g. ``(N, L)``.
        symbols: [S] long tensor of the allowed token ids (the caller
            decides which: SUNDAE's whole vocabulary but ``<pad>``/``<bos>``,
            or :func:`vocabulary_symbols`).
    Returns:
        long tensor of ``shape`` on ``symbols.device`` (or ``device``).
    """
    device = device or symbols.device
    pick = torch.randint(0, symbols.numel(), tuple(shape), device=device, generator=generator)
    return symbols.to(device)[pick]


def uniform_corruption(tokens, canvas, symbols, alpha=None, generator=None):
    """SUNDAE's corruption q(x^c | x) (Savinov et al. 2022, §2.1 and Appendix A.3).

    Per sequence ``alpha ~ U(0, 1)``; each canvas position independently is
    replaced with probability ``alpha`` (Bernoulli mask) by a token drawn
    uniformly from ``symbols``.  A replaced token may by chance equal the
    original, exactly as in the paper's ``(1 - m) * x + m * eta``.

    Unlike the other functions here, ``canvas`` [B, L] (not ``real``) marks
    the positions that may be corrupted: for SUNDAE that is every canvas
    position, including the end-of-text tail the model is trained to
    predict (§3.1), so training inputs look like the decoding inputs.

    Args:
        tokens: [B, L] clean canvas.
        canvas: [B, L] bool, positions that belong to the canvas.
        symbols: [S] long, the noise vocabulary (for SUNDAE, A.3: the whole
            vocabulary but the symbols a canvas never holds).
        alpha: optional [B] corruption proportions (sampled when None).
    Returns:
        (corrupted [B, L] long, replaced [B, L] bool, alpha [B] float)
    """
    bsz = tokens.size(0)
    if alpha is None:
        alpha = torch.rand(bsz, device=tokens.device, generator=generator)
    u = torch.rand(tokens.shape, device=tokens.device, generator=generator)
    replaced = (u < alpha[:, None]) & canvas
    noise = uniform_random_tokens(tokens.shape, symbols, generator=generator, device=tokens.device)
    return torch.where(replaced, noise, tokens), replaced, alpha


def vocabulary_symbols(dictionary):
    """[S] long ids of a fairseq Dictionary's ordinary symbols: no special
    symbols (the first ``nspecial``) and no ``madeupword`` vocabulary fillers."""
    ids = [i for i in range(dictionary.nspecial, len(dictionary)) if not dictionary[i].startswith("madeupword")]
    return torch.tensor(ids, dtype=torch.long)


def d3pm_corruption(tokens, real, rate, process, mask_idx=None, symbols=None, generator=None):
    """One sample of D3PM's ``q(x_t | x_0)`` for absorbing or uniform corruption (Austin et al. 2021, §3.1).

    Each real position is independently corrupted with probability ``rate``
    (``1 - alpha_bar_t``): ``"absorbing"`` replaces it by ``mask_idx``, ``"uniform"``
    by a token drawn uniformly from ``symbols`` (possibly the original, as in
    ``Q_bar_t = alpha_bar_t I + (1 - alpha_bar_t) 11^T / K``).  Both are
    :func:`uniform_corruption` with a fixed rate; absorbing draws from ``[mask_idx]``.

    Args:
        tokens: [B, L]; real: [B, L] bool; rate: float in [0, 1].
        process: ``"absorbing"`` or ``"uniform"``.
    Returns:
        (corrupted [B, L] long, corrupted-position mask [B, L] bool)
    """
    if process == "absorbing":
        symbols = torch.tensor([mask_idx], dtype=torch.long, device=tokens.device)
    elif process != "uniform":
        raise ValueError(f"unknown D3PM process {process!r} (absorbing or uniform)")
    alpha = torch.full((tokens.size(0),), float(rate), device=tokens.device)
    corrupted, replaced, _ = uniform_corruption(tokens, real, symbols, alpha=alpha, generator=generator)
    return corrupted, replaced
