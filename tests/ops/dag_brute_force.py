"""Brute-force oracles for the DAG ops: enumerate every path of a tiny graph.

Deliberately naive (per-sentence Python loops, itertools) so that it shares no
logic with the dynamic programs under test.  Scores are built from the input
tensors with differentiable torch ops, so autograd through the enumeration is
the gradient oracle.
"""
import itertools
import math

import torch


def paths(P_b: int, n_vertices: int):
    """All strictly increasing vertex tuples of length n from 0 to P_b - 1."""
    if n_vertices == 1:
        return [(0,)] if P_b == 1 else []
    if n_vertices > P_b:
        return []
    return [(0,) + mid + (P_b - 1,) for mid in itertools.combinations(range(1, P_b - 1), n_vertices - 2)]


def path_score(match_b, links_b, path):
    """Sum of links along the path + match[t, a_t] (match_b may be None)."""
    s = match_b.new_zeros(()) if match_b is not None else links_b.new_zeros(())
    for t, v in enumerate(path):
        if match_b is not None:
            s = s + match_b[t, v]
        if t > 0:
            s = s + links_b[path[t - 1], v]
    return s


def log_likelihood(match, links, P_len, T_len):
    """[B] float64 logsumexp over all paths (differentiable)."""
    out = []
    for b in range(match.shape[0]):
        ps = paths(int(P_len[b]), int(T_len[b]))
        scores = [path_score(match[b].double(), links[b].double(), p) for p in ps]
        scores = [s for s in scores if torch.isfinite(s)]
        if not scores:  # detached: logsumexp's backward of all -inf would be 0 * NaN
            out.append(torch.tensor(-math.inf, dtype=torch.float64))
            continue
        out.append(torch.logsumexp(torch.stack(scores), dim=0))
    return torch.stack(out)


def best_alignment(match, links, P_len, T_len):
    """(alignment [B, P] long, best score [B]) by enumeration; -1 / -inf without a finite path."""
    B, T, P = match.shape
    align = torch.full((B, P), -1, dtype=torch.long)
    best = torch.full((B,), -math.inf, dtype=torch.float64)
    for b in range(B):
        for p in paths(int(P_len[b]), int(T_len[b])):
            s = float(path_score(match[b].double(), links[b].double(), p))
            if s > best[b]:
                best[b] = s
                align[b] = -1
                for t, v in enumerate(p):
                    align[b, v] = t
    return align, best


def _divisor(n_vertices, beta, norm):
    """|a|^beta ("vertices") or max(1, |a| - 1)^beta ("transitions")."""
    return (max(1, n_vertices - 1) if norm == "transitions" else n_vertices) ** beta


def joint_viterbi(links, token_logprobs, P_len, max_len, beta, norm="vertices"):
    """(best path tuple or None, best normalised score) per sentence, by enumeration."""
    res = []
    for b in range(links.shape[0]):
        best, best_p = -math.inf, None
        for n in range(1, int(max_len[b]) + 1):
            for p in paths(int(P_len[b]), n):
                raw = float(path_score(None, links[b].double(), p))
                if token_logprobs is not None:
                    raw += float(sum(token_logprobs[b, v].double() for v in p))
                s = raw / _divisor(n, beta, norm)
                if s > best:
                    best, best_p = s, p
        res.append((best_p, best))
    return res


def normalised_path_score(links_b, tok_b, path, beta, norm="vertices"):
    raw = float(path_score(None, links_b.double(), path))
    if tok_b is not None:
        raw += float(sum(tok_b[v].double() for v in path))
    return raw / _divisor(len(path), beta, norm)
