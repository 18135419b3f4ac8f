"""Lexically constrained joint-Viterbi over a DA-Transformer graph (ours; PyTorch reference).

Joint-Viterbi (Shao et al. 2022) picks the path ``a`` (vertex 0 to ``P_b - 1``)
maximising ``(sum links + sum_i s(a_i)) / norm(|a|)^beta`` where ``s(v)`` is the
score of the token vertex ``v`` emits.  Here the user also gives ordered
constraint phrases (fairseq's ``--constraints ordered``); concatenated they are
the tokens ``c_0 .. c_{C-1}``.  Every vertex on the path either emits its free
token (score ``token_logprobs[v]``, the most probable one) or the next
constraint token ``c_k`` (score ``constraint_logprobs[k, v] = log P(c_k | v)``),
and the tokens of one phrase sit on consecutive path vertices.  The search is
exact: a DP over (path length ``n``, progress ``k``, vertex ``j``),

    delta_n[k, j] = max( max_i delta_{n-1}[k, i]     + links[i, j] + s_free(j)   if k is a phrase boundary,
                         max_i delta_{n-1}[k - 1, i] + links[i, j] + log P(c_{k-1} | v_j) )

where a phrase boundary is ``k = 0`` or ``c_{k-1}`` ending a phrase: inside a
phrase no free token may interrupt it.  Paths must end with ``k = C``; the
length is chosen at the end with the same normalisation as unconstrained
joint-Viterbi (:func:`nat_plugins.ops.dag_viterbi_torch.dag_viterbi_torch`).
Cost ``O(L * (C + 1) * P^2)`` per sentence, memory ``B * L * (C + 1) * P``.

A sentence whose constraints cannot be placed (more constraint tokens than
vertices, or only ``-inf`` paths) gets length 0 and score ``-inf``; the caller
decides what to do (the DAG strategy falls back to the unconstrained path).
"""
from typing import Optional, Tuple

import torch

from .dag_checks import check_viterbi_inputs
from .dag_common_torch import acc_dtype, masked_links
from .dag_maxplus_torch import _BLOCK

__all__ = ["dag_constrained_viterbi"]

_NEG_INF = float("-inf")


def _maxplus_states(prev, Lt, out, i_lo, i_hi, j_lo, j_hi, buf):
    """``out[b, k, j] = max_{lo <= i < min(hi, j)} prev[b, k, i] + Lt[b, j, i]`` for ``j`` in ``[j_lo, j_hi)``.

    ``prev``/``out`` ``[B, K, P]``, ``Lt`` ``[B, P, P]`` (links transposed): every progress state ``k`` reads
    the same links, so they are broadcast, not copied ``K`` times; column blocks as in
    :class:`~nat_plugins.ops.dag_maxplus_torch.MaxPlus`.
    """
    B, K, _ = prev.shape
    for c0 in range(j_lo, j_hi, _BLOCK):
        c1 = min(j_hi, c0 + _BLOCK)
        i1 = min(i_hi, c1 - 1)
        if i1 <= i_lo:
            out[:, :, c0:c1] = float("-inf")
            continue
        n = i1 - i_lo
        X = buf[: B * K * (c1 - c0) * n].view(B, K, c1 - c0, n)
        torch.add(prev[:, :, None, i_lo:i1], Lt[:, None, c0:c1, i_lo:i1], out=X)
        torch.amax(X, dim=3, out=out[:, :, c0:c1])


def _check_constraints(constraint_logprobs, phrase_end, constraint_length, B, P, device):
    if constraint_logprobs.dim() != 3 or constraint_logprobs.shape[0] != B or constraint_logprobs.shape[2] != P:
        raise ValueError(f"constraint_logprobs must have shape [B, C, P] = [{B}, C, {P}], "
                         f"got {list(constraint_logprobs.shape)}")
    C = constraint_logprobs.shape[1]
    if tuple(phrase_end.shape) != (B, C) or phrase_end.dtype != torch.bool:
        raise ValueError(f"phrase_end must be a bool tensor [B, C] = [{B}, {C}], got {phrase_end.dtype} "
                         f"{list(phrase_end.shape)}")
    if constraint_logprobs.device != device or phrase_end.device != device:
        raise ValueError("constraint tensors must be on the links' device")
    C_len = constraint_length.detach().to("cpu", torch.long)
    if C_len.shape != (B,) or bool((C_len < 0).any()) or bool((C_len > C).any()):
        raise ValueError(f"constraint_length must be [B] ints in [0, C={C}], got {constraint_length.tolist()}")
    return C_len


@torch.no_grad()
def dag_constrained_viterbi(
    links: torch.Tensor,
    token_logprobs: Optional[torch.Tensor],
    constraint_logprobs: torch.Tensor,
    phrase_end: torch.Tensor,
    constraint_length: torch.Tensor,
    output_length: torch.Tensor,
    beta: float = 1.0,
    max_length=None,
    length_norm: str = "vertices",
    word_final_logprobs: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best joint-Viterbi path that emits every constraint phrase, in order.

    Args:
        links: ``[B, P, P]`` log P(v_j | v_i), read for ``i < j < P_b``.
        token_logprobs: ``[B, P]`` score of a vertex's free token, or None (zeros).
        constraint_logprobs: ``[B, C, P]`` ``log P(c_k | v_j)`` of the ``k``-th constraint token;
            read for ``k < C_b``.  ``-inf`` forbids a vertex (e.g. the frame vertices).
        phrase_end: ``[B, C]`` bool, ``c_k`` is the last token of its phrase (true at ``C_b - 1``).
        constraint_length: ``[B]`` ``C_b`` (0: plain joint-Viterbi).
        output_length: ``[B]`` ``P_b``.
        beta: length exponent, as for :func:`nat_plugins.ops.dag_viterbi`.
        max_length: None, int or ``[B]``: most vertices a path may have (default ``P_b``).
        length_norm: ``"vertices"`` (divide by ``|a|^beta``) or ``"transitions"``
            (``max(1, |a| - 1)^beta``), the two rules of :func:`nat_plugins.ops.dag_viterbi`.
        word_final_logprobs: ``[B, P]``, ``[B, C + 1, P]`` or None.  The score of a vertex's best free
            token that ends a word (with subword units: not a continuation piece such as ``ab@@``); in
            the ``[B, C + 1, P]`` form, per progress ``k``, the one that may stand before the phrase
            opening at ``c_k`` (the caller can exclude ``c_k`` itself, which the repeat merge would
            swallow).  When given, a free vertex directly before the first token of a phrase must emit
            such a token, so removing the subword markers cannot join the phrase to the word before it.
            None: no such rule.

    Returns:
        ``(vertices [B, L] long, emits [B, L] long, lengths [B] long, scores [B])``:
        the path (``-1`` padded); per path vertex the index ``k`` of the constraint token
        it emits, ``-1`` for its free token, or ``-2`` for its word-final free token (only with
        ``word_final_logprobs``); the path length (0 when infeasible);
        the normalised score (``-inf`` when infeasible), in ``links.dtype``.
    """
    if length_norm not in ("transitions", "vertices"):
        raise ValueError(f"length_norm must be 'transitions' or 'vertices', got {length_norm!r}")
    P_len, M_len = check_viterbi_inputs(links, token_logprobs, output_length, max_length, beta)
    B, P, _ = links.shape
    dev = links.device
    C_len = _check_constraints(constraint_logprobs, phrase_end, constraint_length, B, P, dev)
    C = constraint_logprobs.shape[1]
    if word_final_logprobs is not None and tuple(word_final_logprobs.shape) not in ((B, P), (B, C + 1, P)):
        raise ValueError(f"word_final_logprobs must have shape [B, P] = [{B}, {P}] or [B, C + 1, P] = "
                         f"[{B}, {C + 1}, {P}], got {list(word_final_logprobs.shape)}")
    C1 = C + 1
    dt = acc_dtype(links.dtype)
    P_dev, C_dev = P_len.to(dev), C_len.to(dev)

    j = torch.arange(P, device=dev)
    valid = j[None, :] < P_dev[:, None]  # [B, P]
    tok = torch.zeros((B, P), dtype=dt, device=dev) if token_logprobs is None else token_logprobs.to(dt)
    tok = tok.masked_fill(~valid, _NEG_INF)
    final = tok[:, None, :] if word_final_logprobs is None else word_final_logprobs.to(dt)
    final = (final if final.dim() == 3 else final[:, None, :]).masked_fill(~valid[:, None, :], _NEG_INF)
    con_ok = (torch.arange(C, device=dev)[None, :] < C_dev[:, None])[:, :, None] & valid[:, None, :]
    con = constraint_logprobs.to(dt).masked_fill(~con_ok, _NEG_INF)  # [B, C, P]
    # States (f, k): progress k; f = 1 when the last vertex's token is safe before a phrase (a word-final
    # free token or a constraint token), f = 0 for any free token.
    # free[:, k]: free emission while at progress k (only at phrase boundaries);
    # enter[:, k]: emit c_{k-1} and move from progress k - 1 to k, from any state inside a phrase and only
    # from f = 1 when c_{k-1} opens a phrase.
    boundary = torch.cat([torch.ones((B, 1), dtype=torch.bool, device=dev), phrase_end], 1)  # [B, C1]
    free = torch.stack([tok[:, None, :].expand(B, C1, P), final.expand(B, C1, P)], 1).masked_fill(
        ~boundary[:, None, :, None], _NEG_INF)  # [B, 2, C1, P]
    enter = torch.cat([torch.full((B, 1, P), _NEG_INF, dtype=dt, device=dev), con], 1)
    opens = boundary[:, :-1]  # [B, C]: c_k opens a phrase

    Lt = masked_links(links, P_dev, dt).transpose(1, 2).contiguous()  # [B, j, i]
    buf = Lt.new_empty(B * 2 * C1 * min(P, _BLOCK) * P)
    Lmax, Pmax = int(M_len.max()), int(P_len.max())
    delta = torch.full((B, Lmax, 2, C1, P), _NEG_INF, dtype=dt, device=dev)
    delta[:, 0, :, 0, 0] = free[:, :, 0, 0]  # a path starts at vertex 0 with progress 0 or 1
    if C1 > 1:
        delta[:, 0, 1, 1, 0] = enter[:, 1, 0]
    a = torch.empty((B, 2 * C1, P), dtype=dt, device=dev)
    for n in range(1, Lmax):
        a.fill_(_NEG_INF)
        _maxplus_states(delta[:, n - 1].reshape(B, 2 * C1, P), Lt, a, n - 1, Pmax - 1, n, Pmax, buf)
        a2 = a.view(B, 2, C1, P)
        any_f = torch.maximum(a2[:, 0], a2[:, 1])  # [B, C1, P]
        source = torch.where(opens[:, :, None], a2[:, 1, :-1], any_f[:, :-1])  # [B, C, P]: to enter c_k
        shifted = torch.cat([torch.full_like(any_f[:, :1], _NEG_INF), source], 1)
        delta[:, n, 0] = any_f + free[:, 0]
        delta[:, n, 1] = torch.maximum(any_f + free[:, 1], shifted + enter)

    rows = torch.arange(B, device=dev)
    ends = delta[rows, :, :, C_dev, P_dev - 1].amax(2)  # [B, Lmax]: best raw score per path length
    n_vertices = torch.arange(1, Lmax + 1, device=dev, dtype=dt)
    divisor = (n_vertices - 1).clamp(min=1) if length_norm == "transitions" else n_vertices
    norm = ends / divisor.pow(float(beta))
    norm = norm.masked_fill(n_vertices[None, :] > M_len.to(dev)[:, None], _NEG_INF)
    scores, best_n = norm.max(dim=1)
    found = torch.isfinite(scores)
    lengths = torch.where(found, best_n + 1, torch.zeros_like(best_n))

    L_out = max(1, int(lengths.max()))
    verts = torch.full((B, L_out + 1), -1, dtype=torch.long, device=dev)
    emits = torch.full((B, L_out + 1), -1, dtype=torch.long, device=dev)
    v, k = P_dev - 1, C_dev.clone()
    last = delta[rows, torch.clamp(best_n, min=0), :, k, v]  # [B, 2]
    f = last.argmax(1)
    unsafe = torch.tensor([True, False], device=dev)[None, :, None]  # f = 0 may not precede a phrase
    for n in range(L_out - 1, -1, -1):
        active = found & (n <= best_n)
        slot = torch.where(active, torch.full_like(v, n), torch.full_like(v, L_out))
        # Which move reached (n, f, k, v): a free emission (f = 0: any token, f = 1: word-final) or
        # entering c_{k-1} from progress k - 1 (only f = 1)?
        if n > 0:
            into_v = Lt[rows, v]  # [B, P] links i -> v
            prev = delta[rows, n - 1]  # [B, 2, C1, P]
            stay = prev[rows, :, k] + into_v[:, None, :]  # [B, 2, P]
            km1 = (k - 1).clamp(min=0)
            opened = opens[rows, km1] & (k > 0)
            came = prev[rows, :, km1] + into_v[:, None, :]
            came = torch.where(opened[:, None, None], came.masked_fill(unsafe, _NEG_INF), came)
            stay_best, stay_arg = stay.reshape(B, -1).max(1)
            came_best, came_arg = came.reshape(B, -1).max(1)
            s_free = stay_best + free[rows, f, k, v]
            s_enter = torch.where((k > 0) & (f == 1), came_best + enter[rows, k, v],
                                  torch.full_like(came_best, _NEG_INF))
            entered = s_enter > s_free
        else:
            entered = k > 0  # vertex 0 itself emitted c_0
        verts[rows, slot] = torch.where(active, v, -1)
        free_code = torch.where(f == 1, torch.full_like(k, -2), torch.full_like(k, -1))
        emits[rows, slot] = torch.where(active, torch.where(entered, k - 1, free_code), -1)
        if n > 0:
            pick = torch.where(entered, came_arg, stay_arg)
            v = torch.where(active, pick % P, v)
            f = torch.where(active, pick // P, f)
            k = torch.where(active & entered, k - 1, k)
    if word_final_logprobs is None:
        emits = emits.masked_fill(emits.eq(-2), -1)
    return verts[:, :L_out], emits[:, :L_out], lengths, scores.to(links.dtype)
