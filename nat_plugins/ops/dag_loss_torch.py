"""PyTorch reference for the DA-Transformer likelihood (Huang et al., ICML 2022, §2.2-2.3).

log P(Y|X) = log sum over paths a (a_1 = 0 < a_2 < ... < a_T = P_b - 1) of
             sum_i links[a_i, a_{i+1}] + sum_t match[t, a_t].

Forward: alpha_t[j] = log sum_i exp(alpha_{t-1}[i] + links[i, j]) + match[t, j].

Speed.  Each step is a batched mat-vec in exp space: with a column shift
s_j = max_i links[i, j] (computed once) and a row shift a = max_i alpha_{t-1}[i]
(per step), alpha_t[j] = a + s_j + log sum_i A[i] E[i, j] + match[t, j] with
A = exp(alpha_{t-1} - a) and E = exp(links - s) both in [0, 1].  The products
run in float64, so underflow needs a dynamic range above ~700 nats.

Backward.  Instead of a beta recursion (whose own exp-space version could
underflow along rows of E), the adjoint gamma_t[i] = d logZ / d alpha_t[i] is
propagated.  It is the vertex posterior, bounded in [0, 1]:
    gamma_{t-1}[i] = A_{t-1}[i] * sum_j E[i, j] * gamma_t[j] / sigma_t[j],
where sigma_t = A_{t-1} E is the sum the forward already computed.  Then
    d logZ / d match[t, j]  = gamma_t[j]
    d logZ / d links[i, j]  = E[i, j] * sum_t A_{t-1}[i] * gamma_t[j] / sigma_t[j]
(one bmm over t).  Memory: alpha, sigma, E and a few [B, T, P] buffers, i.e.
O(B*T*P + B*P^2), instead of the T*B*P^2 floats autograd through logsumexp keeps.

Exactness.  A cell whose exp-space sum sigma_t[j] is below 1e-290 although the
cell is reachable (some finite predecessor has a finite link into it) may have
lost its mass to underflow.  Such sentences are recomputed, forward and
backward, by a plain log-space program (logsumexp over [P, P] per step), which
is slower but exact for any finite inputs.
"""
from typing import Tuple

import torch

from .dag_common_torch import NEG_INF, masked_links, masked_match

__all__ = ["dag_log_likelihood_torch"]

# Below this the exp-space sum may be an underflow artefact (fp64 normals end at ~2.2e-308).
_TINY = 1e-290
# Keeps gamma / sigma finite so that 0 * ratio never produces NaN.
_RATIO_MAX = 1e300
# Batch chunk for the [B, P, P] link-gradient product: bounds the fp64 temporary.
_GRAD_CHUNK = 4
# The mat-vecs are memory bound; splitting the strictly upper-triangular E into
# column (row) blocks skips most of the zero triangle: (K+1)/2K of the bytes.
_TRI_BLOCKS = 4


def _blocks(lo: int, hi: int):
    n = max(1, min(_TRI_BLOCKS, hi - lo))
    edges = [lo + (hi - lo) * k // n for k in range(n + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _vec_mat_upper(x, E, i_lo, i_hi, j_lo, j_hi):
    """out[b, j] = sum_{i_lo <= i < min(i_hi, j)} x[b, i] E[b, i, j] for j in [j_lo, j_hi), else 0."""
    out = x.new_zeros(x.shape)
    for c0, c1 in _blocks(j_lo, j_hi):
        i1 = min(i_hi, c1 - 1)
        if i1 > i_lo:
            out[:, c0:c1] = torch.bmm(x[:, None, i_lo:i1], E[:, i_lo:i1, c0:c1]).squeeze(1)
    return out


def _vec_mat_lower(u, Et, i_lo, i_hi, j_lo, j_hi):
    """out[b, i] = sum_{max(j_lo, i+1) <= j < j_hi} u[b, j] Et[b, j, i] for i in [i_lo, i_hi), else 0.

    The backward needs E @ u; with E stored transposed it becomes a row-vector
    times matrix again, which streams memory ~2x faster than the column form.
    """
    out = u.new_zeros(u.shape)
    for c0, c1 in _blocks(i_lo, i_hi):
        j0 = max(j_lo, c0 + 1)
        if j_hi > j0:
            out[:, c0:c1] = torch.bmm(u[:, None, j0:j_hi], Et[:, j0:j_hi, c0:c1]).squeeze(1)
    return out


def _band(t: int, P: int, P_len: torch.Tensor, T_len: torch.Tensor) -> torch.Tensor:
    """[B, P] bool: vertices that can be step t of a complete T_b-vertex path."""
    j = torch.arange(P, device=P_len.device).unsqueeze(0)
    return (j >= t) & (j <= (P_len - T_len + t).unsqueeze(1)) & (t < T_len).unsqueeze(1)


def _gather_logz(alpha: torch.Tensor, P_len: torch.Tensor, T_len: torch.Tensor) -> torch.Tensor:
    b = torch.arange(alpha.shape[0], device=alpha.device)
    return alpha[b, T_len - 1, P_len - 1]


def _forward_fast(match_m: torch.Tensor, links: torch.Tensor, P_len, T_len, check: bool):
    """Exp-space forward.  Returns (alpha, sigma, shift, E^T, suspicious[B])."""
    B, T, P = match_m.shape
    D = int((P_len - T_len).max())  # widest band: step t only touches vertices t .. t + D
    dt = match_m.dtype
    E = masked_links(links, P_len, dt)
    s = E.amax(dim=1)
    s.masked_fill_(~torch.isfinite(s), 0.0)
    E.sub_(s.unsqueeze(1)).exp_()
    alpha = match_m.new_full((B, T, P), NEG_INF)
    alpha[:, 0, 0] = match_m[:, 0, 0]
    sigma = match_m.new_zeros((B, T, P))  # sigma[:, t] feeds alpha[:, t]
    shift = match_m.new_zeros((B, T))  # shift[:, t] = row max of alpha[:, t]
    suspicious = torch.zeros(B, dtype=torch.bool, device=match_m.device)
    finite_links = None
    for t in range(1, T):
        prev = alpha[:, t - 1]
        a = prev.amax(dim=1)
        a.masked_fill_(~torch.isfinite(a), 0.0)
        shift[:, t - 1] = a
        A = (prev - a.unsqueeze(1)).exp_()
        sig = _vec_mat_upper(A, E, t - 1, min(P, t + D), t, min(P, t + D + 1))
        sigma[:, t] = sig
        alpha[:, t] = sig.log().add_(a.unsqueeze(1)).add_(s).add_(match_m[:, t])
        if not check:
            continue
        tiny = (sig < _TINY) & _band(t, P, P_len, T_len)
        if bool(tiny.any()):
            # Unreachable cells are legitimately 0 (-inf links, -inf match); only a
            # reachable one signals underflow.  Checked only for the rows concerned.
            rows = tiny.any(dim=1).nonzero().squeeze(1)
            if finite_links is None:
                finite_links = torch.isfinite(masked_links(links, P_len, torch.float32))
            reach = torch.bmm(
                torch.isfinite(prev[rows]).to(dt).unsqueeze(1), finite_links[rows].to(dt)
            ).squeeze(1) > 0
            suspicious[rows] |= (tiny[rows] & reach).any(dim=1)
    a = alpha[:, T - 1].amax(dim=1)
    shift[:, T - 1] = a.masked_fill_(~torch.isfinite(a), 0.0)
    # Transpose in place, chunk by chunk, so E and E^T never both exist in full.
    for c0 in range(0, B, _GRAD_CHUNK):
        c1 = min(B, c0 + _GRAD_CHUNK)
        E[c0:c1] = E[c0:c1].transpose(1, 2).contiguous()
    return alpha, sigma, shift, E, suspicious


def _backward_fast(grad, alpha, sigma, shift, Et, P_len, T_len, match_dtype, links_dtype):
    """Posterior (adjoint) recursion in exp space.  Returns (grad_match, grad_links)."""
    B, T, P = alpha.shape
    dt = alpha.dtype
    dev = alpha.device
    D = int((P_len - T_len).max())
    logz = _gather_logz(alpha, P_len, T_len)
    g = torch.where(torch.isfinite(logz), grad.to(dt), torch.zeros_like(logz))
    onehot = (torch.arange(P, device=dev).unsqueeze(0) == (P_len - 1).unsqueeze(1)).to(dt)
    onehot.mul_(torch.isfinite(logz).to(dt).unsqueeze(1))
    last = T_len - 1
    gam_all = alpha.new_zeros((B, T, P))
    ratio = alpha.new_zeros((B, T, P))  # ratio[:, t] = gamma_t / sigma_t, t >= 1
    gam = alpha.new_zeros((B, P))
    for t in range(T - 1, -1, -1):
        gam = torch.where((last == t).unsqueeze(1), onehot, gam)
        gam_all[:, t] = gam
        if t == 0:
            break
        sig = sigma[:, t]
        u = torch.where(sig > 0, gam / sig, torch.zeros_like(sig)).clamp_(max=_RATIO_MAX)
        ratio[:, t] = u
        A = (alpha[:, t - 1] - shift[:, t - 1].unsqueeze(1)).exp_()
        gam = _vec_mat_lower(u, Et, t - 1, min(P, t + D), t, min(P, t + D + 1)).mul_(A)
    grad_match = gam_all.mul_(g.view(B, 1, 1)).to(match_dtype)
    del gam_all
    A_all = (alpha[:, : T - 1] - shift[:, : T - 1].unsqueeze(2)).exp_()
    ratio_t = ratio[:, 1:].transpose(1, 2)
    # Written chunk by chunk straight in the caller's dtype: no full-size fp64 copy.
    grad_links = torch.empty((B, P, P), dtype=links_dtype, device=dev)
    for c0 in range(0, B, _GRAD_CHUNK):
        c1 = min(B, c0 + _GRAD_CHUNK)
        # S^T[j, i] = sum_t ratio_t[j] A_{t-1}[i], in E^T's layout.
        St = torch.bmm(ratio_t[c0:c1], A_all[c0:c1])
        St.mul_(Et[c0:c1]).mul_(g[c0:c1].view(-1, 1, 1))
        grad_links[c0:c1] = St.transpose(1, 2)
    return grad_match, grad_links


def _forward_exact(match_m: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Log-space forward on masked inputs (match_m [n,T,P], L [n,P,P]).  Returns alpha."""
    n, T, P = match_m.shape
    alpha = match_m.new_full((n, T, P), NEG_INF)
    alpha[:, 0, 0] = match_m[:, 0, 0]
    for t in range(1, T):
        alpha[:, t] = torch.logsumexp(alpha[:, t - 1].unsqueeze(2) + L, dim=1) + match_m[:, t]
    return alpha


def _backward_exact(grad, alpha, L, P_len, T_len):
    """Log-space posterior recursion via explicit edge posteriors [n, P, P] per step."""
    n, T, P = alpha.shape
    dt = alpha.dtype
    logz = _gather_logz(alpha, P_len, T_len)
    g = torch.where(torch.isfinite(logz), grad.to(dt), torch.zeros_like(logz))
    j = torch.arange(P, device=alpha.device).unsqueeze(0)
    log_onehot = torch.where(j == (P_len - 1).unsqueeze(1), 0.0, NEG_INF).to(dt)
    log_onehot.masked_fill_(~torch.isfinite(logz).unsqueeze(1), NEG_INF)
    grad_match = alpha.new_zeros((n, T, P))
    grad_links = alpha.new_zeros((n, P, P))
    lg = alpha.new_full((n, P), NEG_INF)
    for t in range(T - 1, -1, -1):
        lg = torch.where((T_len - 1 == t).unsqueeze(1), log_onehot, lg)
        grad_match[:, t] = lg.exp()
        if t == 0:
            break
        scores = alpha[:, t - 1].unsqueeze(2) + L
        pre = torch.logsumexp(scores, dim=1)
        w = torch.where(torch.isfinite(lg), lg - pre, torch.full_like(lg, NEG_INF))
        xi = scores.add_(w.unsqueeze(1)).exp_()
        grad_links += xi
        lg = xi.sum(dim=2).log_()
    return grad_match * g.view(n, 1, 1), grad_links * g.view(n, 1, 1)


class _DagLogLikelihood(torch.autograd.Function):
    @staticmethod
    def forward(ctx, match, links, P_len, T_len, mode):
        dt = torch.float64
        match_m = masked_match(match, P_len, T_len, dt)
        if mode == "exact":
            alpha = _forward_exact(match_m, masked_links(links, P_len, dt))
            exact_rows = torch.arange(match.shape[0], device=match.device)
            sigma = shift = Et = None
        else:
            alpha, sigma, shift, Et, suspicious = _forward_fast(match_m, links, P_len, T_len, mode == "auto")
            exact_rows = suspicious.nonzero().squeeze(1)
            if exact_rows.numel():
                alpha[exact_rows] = _forward_exact(
                    match_m[exact_rows], masked_links(links[exact_rows], P_len[exact_rows], dt))
        del match_m
        logz = _gather_logz(alpha, P_len, T_len)
        ctx.mode = mode
        ctx.in_dtypes = (match.dtype, links.dtype)
        ctx.save_for_backward(links, alpha, sigma, shift, Et, P_len, T_len, exact_rows)
        return logz.to(match.dtype)

    @staticmethod
    def backward(ctx, grad):
        links, alpha, sigma, shift, Et, P_len, T_len, exact_rows = ctx.saved_tensors
        dt = alpha.dtype
        if ctx.mode == "exact":
            gm, gl = _backward_exact(grad, alpha, masked_links(links, P_len, dt), P_len, T_len)
            return gm.to(ctx.in_dtypes[0]), gl.to(ctx.in_dtypes[1]), None, None, None
        gm, gl = _backward_fast(grad, alpha, sigma, shift, Et, P_len, T_len, *ctx.in_dtypes)
        if exact_rows.numel():
            r = exact_rows
            em, el = _backward_exact(grad[r], alpha[r], masked_links(links[r], P_len[r], dt), P_len[r], T_len[r])
            # The fast path already wrote gm/gl in the callers' dtypes (fp32 in training).
            gm[r], gl[r] = em.to(gm.dtype), el.to(gl.dtype)
        return gm.to(ctx.in_dtypes[0]), gl.to(ctx.in_dtypes[1]), None, None, None


def dag_log_likelihood_torch(
    match: torch.Tensor,
    links: torch.Tensor,
    output_length: torch.Tensor,
    target_length: torch.Tensor,
    mode: str = "auto",
) -> torch.Tensor:
    """DA-Transformer log-likelihood, PyTorch reference (Huang et al. 2022, §2.2-2.3).

    Inputs are assumed validated by ``dag_checks.check_dag_inputs``.

    Args:
        match: ``[B, T, P]``, ``match[b, t, j] = log P(y_t | v_j)``.
        links: ``[B, P, P]``, ``links[b, i, j] = log P(v_j | v_i)``; only ``i < j < P_b`` is read.
        output_length: ``[B]`` long, ``P_b``.
        target_length: ``[B]`` long, ``T_b``.
        mode: ``"auto"`` (exp space, exact log-space redo of sentences that underflow),
            ``"fast"`` (exp space only) or ``"exact"`` (log space only); the last two are for tests.

    Returns:
        ``[B]`` in ``match.dtype``; ``-inf`` where no finite path exists.  Differentiable
        w.r.t. ``match`` and ``links`` (hand-written forward-backward, fp64 internally).
    """
    if mode not in ("auto", "fast", "exact"):
        raise ValueError(f"mode must be 'auto', 'fast' or 'exact', got {mode!r}")
    dev = match.device
    return _DagLogLikelihood.apply(
        match, links, output_length.to(dev, torch.long), target_length.to(dev, torch.long), mode)
