"""Constrained joint-Viterbi vs brute force over every path and every placement of the phrases."""
import itertools
import math

import pytest
import torch

import dag_brute_force as bf
from dag_test_utils import clean, random_batch
from nat_plugins.ops import dag_viterbi
from nat_plugins.ops.dag_constrained_torch import dag_constrained_viterbi

P_LEN = [7, 6, 1, 2, 5, 7, 3, 6]


def _placements(n, phrase_lens):
    """Every way to put the phrases, in order and each on consecutive positions, into n path slots.

    Yields a tuple of length n: constraint token index per slot, or -1 for a free slot.
    """
    for starts in itertools.combinations(range(n), len(phrase_lens)):
        ends = [s + length for s, length in zip(starts, phrase_lens)]
        if ends and ends[-1] > n or any(e > s2 for e, s2 in zip(ends, starts[1:])):
            continue  # a phrase runs past the path or into the next one
        slots, k = [-1] * n, 0
        for s, e in zip(starts, ends):
            for pos in range(s, e):
                slots[pos], k = k, k + 1
        yield tuple(slots)


def _word_final_slots(slots, lens):
    """``slots`` with -2 for every free slot directly before the first token of a phrase."""
    starts = set(itertools.accumulate([0] + lens[:-1]))
    return tuple(-2 if k == -1 and i + 1 < len(slots) and slots[i + 1] in starts else k
                 for i, k in enumerate(slots))


def _final(tok_final, b, k_next, v):
    """The word-final score of vertex v before the phrase opening at constraint token k_next."""
    return float(tok_final[b, v] if tok_final.dim() == 2 else tok_final[b, k_next, v])


def brute(links, tok, con, phrases, P_len, max_len, beta, length_norm="vertices", tok_final=None):
    """Per sentence ``(path, emits, score)`` of the best constrained path, or (None, None, -inf).

    With ``tok_final``, a free vertex right before a phrase's first token scores (and reports, as -2) its
    word-final token instead."""
    out = []
    for b in range(links.shape[0]):
        lens = [len(p) for p in phrases[b]]
        best, best_p, best_e = -math.inf, None, None
        for n in range(1, int(max_len[b]) + 1):
            for path in bf.paths(int(P_len[b]), n):
                base = float(bf.path_score(None, links[b].double(), path))
                for slots in (_placements(n, lens) if lens else [tuple([-1] * n)]):
                    if tok_final is not None:
                        slots = _word_final_slots(slots, lens)
                    raw = base + sum(float(con[b, k, v]) if k >= 0 else float(tok[b, v]) if k == -1 else
                                     _final(tok_final, b, slots[i + 1], v) for i, (v, k) in enumerate(zip(path, slots)))
                    s = raw / (max(1, n - 1) if length_norm == "transitions" else n) ** beta
                    if s > best:
                        best, best_p, best_e = s, path, slots
        out.append((best_p, best_e, best))
    return out


def _batch(seed, phrases, neg_inf_frac=0.0):
    _, links, P_len, _ = random_batch(P_LEN, [1] * len(P_LEN), seed=seed, neg_inf_frac=neg_inf_frac)
    g = torch.Generator().manual_seed(seed + 7)
    B, P = links.shape[0], links.shape[1]
    tok = torch.randn(B, P, generator=g, dtype=torch.float64) - 0.5
    C = max([sum(len(p) for p in ph) for ph in phrases] + [1])
    # Constraint tokens are usually less likely than the free token (they are forced).
    con = torch.randn(B, C, P, generator=g, dtype=torch.float64) - 2.0
    C_len = torch.tensor([sum(len(p) for p in ph) for ph in phrases])
    phrase_end = torch.zeros(B, C, dtype=torch.bool)
    for b, ph in enumerate(phrases):
        k = 0
        for p in ph:
            k += len(p)
            phrase_end[b, k - 1] = True
    return links, tok, con, phrase_end, C_len, P_len


PHRASES = [
    [[1, 2], [3]],        # 3 tokens in 2 phrases on a 7-vertex graph
    [[5, 5, 5]],          # one 3-token phrase
    [],                   # P_b = 1, no constraint
    [[4]],                # P_b = 2
    [[1], [2], [3]],      # 3 one-token phrases
    [[1, 2, 3, 4]],       # long phrase
    [[9], [8], [7], [6]], # infeasible: 4 tokens, 3 vertices
    [],                   # no constraint: plain joint-Viterbi
]


def _check(links, tok, con, phrase_end, C_len, P_len, beta, max_length, length_norm="vertices", tok_final=None):
    verts, emits, lengths, scores = dag_constrained_viterbi(
        links, tok, con, phrase_end, C_len, P_len, beta=beta, max_length=max_length, length_norm=length_norm,
        word_final_logprobs=tok_final)
    M = P_len if max_length is None else torch.clamp(P_len, max=max_length)
    ref = brute(clean(links), tok, con, PHRASES, P_len, M, beta, length_norm, tok_final)
    for b, (path, slots, best) in enumerate(ref):
        n = int(lengths[b])
        assert (verts[b, n:] == -1).all() and (emits[b, n:] == -1).all()
        if path is None:
            assert n == 0 and scores[b] == -math.inf, b
            continue
        # Continuous random inputs: the optimum (path and placement) is unique.
        assert tuple(verts[b, :n].tolist()) == path, (b, verts[b, :n].tolist(), path)
        assert tuple(emits[b, :n].tolist()) == slots, (b, emits[b, :n].tolist(), slots)
        assert math.isclose(float(scores[b]), best, rel_tol=1e-6, abs_tol=1e-6), (b, float(scores[b]), best)
    return verts, emits, lengths, scores


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.5])
@pytest.mark.parametrize("max_length", [None, 5])
@pytest.mark.parametrize("length_norm", ["vertices", "transitions"])
def test_constrained_viterbi_brute_force(beta, max_length, length_norm):
    for seed in (3, 4):
        _check(*_batch(seed, PHRASES), beta, max_length, length_norm)


@pytest.mark.parametrize("length_norm", ["vertices", "transitions"])
def test_word_final_rule_before_each_phrase_brute_force(length_norm):
    """A free vertex right before a phrase emits its best word-final token (lower than its best token)."""
    for seed in (3, 4, 5):
        links, tok, con, phrase_end, C_len, P_len = _batch(seed, PHRASES)
        g = torch.Generator().manual_seed(seed + 11)
        tok_final = tok - torch.rand(tok.shape, generator=g, dtype=torch.float64) * 3.0
        _, emits, _, _ = _check(links, tok, con, phrase_end, C_len, P_len, 1.0, None, length_norm, tok_final)
        assert bool(emits.eq(-2).any())  # the rule did bind somewhere
    # per-progress word-final scores ([B, C + 1, P]: e.g. excluding the token that opens the next phrase)
    links, tok, con, phrase_end, C_len, P_len = _batch(7, PHRASES)
    per_k = tok[:, None, :] - torch.rand((tok.size(0), con.size(1) + 1, tok.size(1)), dtype=torch.float64,
                                         generator=torch.Generator().manual_seed(1)) * 3.0
    _check(links, tok, con, phrase_end, C_len, P_len, 1.0, None, "transitions", per_k)
    # -inf word-final scores everywhere: a phrase can only open the path (vertex 0) or follow another phrase
    links, tok, con, phrase_end, C_len, P_len = _batch(6, PHRASES)
    _check(links, tok, con, phrase_end, C_len, P_len, 1.0, None, "vertices", torch.full_like(tok, float("-inf")))


def test_neg_inf_links_and_token_scores():
    for seed in range(3):
        links, tok, con, phrase_end, C_len, P_len = _batch(10 + seed, PHRASES, neg_inf_frac=0.3)
        con = con.masked_fill(torch.rand(con.shape, generator=torch.Generator().manual_seed(seed)) < 0.3,
                              float("-inf"))
        _check(links, tok, con, phrase_end, C_len, P_len, 1.0, None)


def test_no_constraints_equals_joint_viterbi():
    links, tok, con, phrase_end, _, P_len = _batch(5, PHRASES)
    zero = torch.zeros_like(P_len)
    verts, emits, lengths, scores = dag_constrained_viterbi(links, tok, con, phrase_end, zero, P_len, beta=1.5)
    v2, l2, s2 = dag_viterbi(links, tok, P_len, beta=1.5, impl="torch")
    assert torch.equal(lengths, l2) and torch.equal(verts, v2)
    assert (emits == -1).all()
    assert torch.allclose(scores, s2)


def test_phrase_never_interrupted():
    # A free token far more likely than anything at every vertex, and one vertex per
    # phrase token that likes it: the best path must still keep the phrase contiguous.
    P = 6
    links = torch.zeros(1, P, P, dtype=torch.float64)
    tok = torch.full((1, P), 5.0, dtype=torch.float64)
    con = torch.full((1, 2, P), -1.0, dtype=torch.float64)
    con[0, 0, 1] = 0.0
    con[0, 1, 4] = 0.0  # favourite vertices of the two tokens are not adjacent
    phrase_end = torch.tensor([[False, True]])
    verts, emits, lengths, _ = dag_constrained_viterbi(links, tok, con, phrase_end, torch.tensor([2]),
                                                       torch.tensor([P]), beta=0.0)
    e = emits[0, : int(lengths[0])].tolist()
    i = e.index(0)
    assert e[i + 1] == 1, e


def test_float32_and_inputs_untouched():
    links, tok, con, phrase_end, C_len, P_len = _batch(6, PHRASES)
    l32, t32, c32 = clean(links).float(), tok.float(), con.float()
    keep = (l32.clone(), t32.clone(), c32.clone())
    verts, emits, lengths, scores = dag_constrained_viterbi(l32, t32, c32, phrase_end, C_len, P_len)
    assert scores.dtype == torch.float32
    assert all(torch.equal(a, b) for a, b in zip(keep, (l32, t32, c32)))
    ref = brute(l32.double(), t32.double(), c32.double(), PHRASES, P_len, P_len, 1.0)
    for b, (path, _, best) in enumerate(ref):
        if path is not None:
            assert tuple(verts[b, : int(lengths[b])].tolist()) == path
            assert math.isclose(float(scores[b]), best, rel_tol=1e-4, abs_tol=1e-4)


def test_bad_shapes_raise():
    links, tok, con, phrase_end, C_len, P_len = _batch(7, PHRASES)
    with pytest.raises(ValueError, match="constraint_logprobs"):
        dag_constrained_viterbi(links, tok, con[:, :, :3], phrase_end, C_len, P_len)
    with pytest.raises(ValueError, match="constraint_length"):
        dag_constrained_viterbi(links, tok, con, phrase_end, C_len + 9, P_len)
