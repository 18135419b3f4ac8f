"""Vocabulary reductions without a materialised ``[rows, V]`` log-softmax (ours: an implementation
detail, not a paper's method; issue #20).

The losses and decoders only need, per row of logits, a few numbers out of the ``V``-wide
distribution: the log-probabilities of some given tokens (the DAG loss's ``log P(y_t | v_j)``,
Huang et al. 2022 §2.2), the best token and its log-probability (mask-predict's confidence,
Ghazvininejad et al. 2019 §3.2), or the argmax (glancing, §2.3).  Computing
``log_softmax`` first writes and reads a second ``[rows, V]`` tensor and, on CPU, maps and
unmaps hundreds of MB per call.  Here the rows are processed in chunks of about
``CHUNK_ELEMENTS`` values through one reused buffer, which stays in cache.

Exactness: the log-normaliser is computed with the same operations as ``torch.logsumexp``
(row max, ``exp(x - max)`` summed along the row, ``log``, plus the max), and each row's
reduction does not depend on which other rows share its chunk, so :func:`target_logprobs` and
:func:`glancing_scores` reproduce ``logits.gather(...) - torch.logsumexp(logits)`` bit for bit
on CPU (the tests check this).  The gradient of :class:`TargetLogProbs` sums the same terms in
another order, within 1e-6 of autograd's.  :func:`best_token_logprobs` normalises with
``torch.log_softmax`` itself.
"""
import torch
from torch.autograd.function import once_differentiable

__all__ = ["CHUNK_ELEMENTS", "TargetLogProbs", "target_logprobs", "glancing_scores", "best_token_logprobs"]

#: Values per chunk (8 MB of fp32): small enough to stay in cache and below glibc's mmap threshold.
CHUNK_ELEMENTS = 1 << 21
#: Fewest rows projected at once.  On CPU, BLAS takes another kernel for 1-3 rows, whose logits
#: differ from the full-batch projection's in the last bits (measured, torch 2.13 / x86); from 4
#: rows on they are identical, so projecting a subset of rows in chunks changes no decision.
MIN_PROJECTED_ROWS = 4


def _spans(n, width, chunk_elements):
    """``(start, end)`` spans over ``n`` items of ``width`` values each, about ``chunk_elements`` per span."""
    step = n if chunk_elements is None else max(1, chunk_elements // max(width, 1))
    return [(i, min(i + step, n)) for i in range(0, n, step)]


def _chunk_size(x):
    # GPUs gain nothing from chunking and lose launches; one span there.
    return None if x.is_cuda else CHUNK_ELEMENTS


def _log_normaliser_(chunk, row_max, buf):
    """``logsumexp`` of ``chunk [n, V]`` along ``V`` given its ``row_max [n]``, using ``buf`` as scratch.

    Same steps as ``torch.logsumexp`` (an infinite max is replaced by 0 before subtracting).
    """
    shift = row_max.masked_fill(torch.isinf(row_max), 0.0)
    scratch = torch.sub(chunk, shift[:, None], out=buf[: chunk.size(0)]).exp_()
    return scratch.sum(-1).log_().add_(shift)


def _target_chunk(part, target, row_max, buf):
    """``(log_softmax(part)`` at ``target`` ``[b, P, T]``, log-normalisers ``[b, P])`` of fp32 ``part [b, P, V]``."""
    b, P, V = part.shape
    norm = _log_normaliser_(part.reshape(-1, V), row_max.reshape(-1), buf).view(b, P)
    picked = part.gather(-1, target[:, None, :].expand(b, P, target.size(1)))
    return picked - norm[:, :, None], norm


class TargetLogProbs(torch.autograd.Function):
    """``match [B, T, P] = log_softmax(logits [B, P, V])[b, j, target[b, t]]``, fused.

    Saves for backward only ``logits`` (which the caller holds anyway), ``target`` and the
    ``[B, P]`` log-normalisers; backward writes ``d logits`` in one pass per chunk:
    ``-softmax * sum_t g[b, t, j]`` plus ``g`` scattered onto the target tokens.
    """

    @staticmethod
    def forward(ctx, logits, target, chunk_elements):
        B, P, V = logits.shape
        T = target.size(1)
        spans = _spans(B, P * V, chunk_elements)
        match = torch.empty(B, P, T, dtype=torch.float, device=logits.device)
        lse = torch.empty(B, P, dtype=torch.float, device=logits.device)
        buf = torch.empty((spans[0][1] - spans[0][0]) * P if spans else 0, V, dtype=torch.float,
                          device=logits.device)
        for lo, hi in spans:
            part = logits[lo:hi].float()
            match[lo:hi], lse[lo:hi] = _target_chunk(part, target[lo:hi], part.amax(-1), buf)
        ctx.save_for_backward(logits, target, lse)
        ctx.chunk_elements = chunk_elements
        return match.transpose(1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_match):
        logits, target, lse = ctx.saved_tensors
        B, P, V = logits.shape
        g = grad_match.transpose(1, 2).float()  # [B, P, T]
        total = g.sum(-1)  # [B, P]
        grad = torch.empty(B, P, V, dtype=torch.float, device=logits.device)
        for lo, hi in _spans(B, P * V, ctx.chunk_elements):
            out = torch.sub(logits[lo:hi].float(), lse[lo:hi, :, None], out=grad[lo:hi]).exp_()
            out.mul_(total[lo:hi, :, None].neg())
            out.scatter_add_(-1, target[lo:hi, None, :].expand(hi - lo, P, target.size(1)), g[lo:hi])
        return grad.to(logits.dtype), None, None


def target_logprobs(logits, target, chunk_elements="auto"):
    """``match [B, T, P]`` fp32: ``log P(y_t | v_j)`` from ``logits [B, P, V]`` and ``target [B, T]``.

    Differentiable with respect to ``logits`` (:class:`TargetLogProbs`).
    """
    chunk = _chunk_size(logits) if chunk_elements == "auto" else chunk_elements
    return TargetLogProbs.apply(logits, target, chunk)


def glancing_scores(logits, target, chunk_elements="auto"):
    """What the no-grad glancing pass needs: ``(match [B, T, P] fp32, argmax [B, P] long)``.

    One read of each chunk gives the row max and argmax, one more the log-normaliser; no
    ``[B, P, V]`` temporary is allocated.
    """
    B, P, V = logits.shape
    T = target.size(1)
    chunk = _chunk_size(logits) if chunk_elements == "auto" else chunk_elements
    spans = _spans(B, P * V, chunk)
    match = torch.empty(B, T, P, dtype=torch.float, device=logits.device)
    index = torch.empty(B, P, dtype=torch.long, device=logits.device)
    buf = torch.empty((spans[0][1] - spans[0][0]) * P if spans else 0, V, dtype=torch.float, device=logits.device)
    with torch.no_grad():
        for lo, hi in spans:
            part = logits[lo:hi].float()
            best, index[lo:hi] = part.max(-1)
            match[lo:hi] = _target_chunk(part, target[lo:hi], best, buf)[0].transpose(1, 2)
    return match, index


def best_token_logprobs(features, project, vocab_size, chunk_elements="auto"):
    """Best token and its log-probability for rows of decoder ``features [M, C]``.

    ``project`` maps ``[m, C]`` features to ``[m, V]`` logits (the decoder's output layer).  Rows
    are projected and normalised a chunk at a time through one reused ``[rows, V]`` buffer, so no
    ``[M, V]`` tensor exists; ``torch.log_softmax`` itself normalises each chunk, so the results
    equal ``log_softmax(project(features)).max(-1)``'s bit for bit when the logits do.

    Returns:
        ``(logprob [M] fp32, token [M] long)``.
    """
    M = features.size(0)
    score = torch.empty(M, dtype=torch.float, device=features.device)
    token = torch.empty(M, dtype=torch.long, device=features.device)
    if M == 0:
        return score, token
    chunk = _chunk_size(features) if chunk_elements == "auto" else chunk_elements
    step = M if chunk is None else max(MIN_PROJECTED_ROWS, chunk // max(vocab_size, 1))
    starts = list(range(0, M, step))
    if len(starts) > 1 and M - starts[-1] < MIN_PROJECTED_ROWS:
        starts.pop()  # a short tail joins the previous chunk
    bounds = starts[1:] + [M]
    buf = None
    for lo, hi in zip(starts, bounds):
        rows = features[lo:hi]
        if rows.size(0) < MIN_PROJECTED_ROWS:
            rows = torch.cat([rows, rows.new_zeros(MIN_PROJECTED_ROWS - rows.size(0), rows.size(1))])
        logits = project(rows).float()
        if buf is None or buf.size(0) < logits.size(0):
            buf = torch.empty_like(logits)
        logprobs = torch.log_softmax(logits, -1, out=buf[: logits.size(0)])[: hi - lo]
        torch.max(logprobs, -1, out=(score[lo:hi], token[lo:hi]))
    return score, token
