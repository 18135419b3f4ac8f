"""Joint-Viterbi vs brute force over all paths and lengths."""
import math

import pytest
import torch

import dag_brute_force as bf
from dag_test_utils import clean, random_batch
from nat_plugins.ops import dag_viterbi

P_LEN = [8, 7, 1, 2, 5, 8, 3]


def _links_tok(seed, neg_inf_frac=0.0, dtype=torch.float64):
    _, links, P_len, _ = random_batch(P_LEN, [1] * len(P_LEN), seed=seed, neg_inf_frac=neg_inf_frac)
    g = torch.Generator().manual_seed(seed + 100)
    tok = torch.randn(len(P_LEN), links.shape[1], generator=g, dtype=torch.float64) - 0.5
    return links.to(dtype), tok.to(dtype), P_len


def _check(links, tok, P_len, beta, max_length, norm="vertices"):
    l0 = links.clone()
    verts, lengths, scores = dag_viterbi(links, tok, P_len, beta=beta, max_length=max_length, impl="torch",
                                         length_norm=norm)
    assert torch.equal(links.nan_to_num(), l0.nan_to_num())
    if max_length is None:
        M = P_len
    elif isinstance(max_length, int):
        M = torch.clamp(P_len, max=max_length)
    else:
        M = torch.minimum(max_length, P_len)
    ref = bf.joint_viterbi(clean(links), tok, P_len, M, beta, norm)
    assert verts.shape[1] == max(1, int(lengths.max()))
    for b, (path, best) in enumerate(ref):
        n = int(lengths[b])
        assert (verts[b, n:] == -1).all()
        if path is None:
            assert n == 0 and scores[b] == -math.inf
            continue
        got = tuple(verts[b, :n].tolist())
        # Continuous random inputs: the optimum is unique, so the path must match exactly.
        assert got == path, (b, got, path)
        assert math.isclose(float(scores[b]), best, rel_tol=1e-5, abs_tol=1e-5)


@pytest.mark.parametrize("norm", ["vertices", "transitions"])
@pytest.mark.parametrize("beta", [0.0, 1.0, 2.5, 0.1])
@pytest.mark.parametrize("max_length", [None, 3, 1, "tensor"])
def test_joint_viterbi_brute_force(beta, max_length, norm):
    links, tok, P_len = _links_tok(seed=21)
    if max_length == "tensor":
        max_length = torch.tensor([2, 9, 1, 2, 4, 5, 3])
    _check(links, tok, P_len, beta, max_length, norm)


def test_transitions_rule_changes_the_choice():
    # 0 -> 2 (one transition, score -2) against 0 -> 1 -> 2 (two, score -3.2), beta = 1:
    # per vertex -2/2 = -1.0 beats -3.2/3 = -1.067 (the short path);
    # per transition -2/1 = -2.0 loses to -3.2/2 = -1.6 (the long path).
    links = torch.full((1, 3, 3), float("-inf"), dtype=torch.float64)
    links[0, 0, 2], links[0, 0, 1], links[0, 1, 2] = -2.0, -1.6, -1.6
    P_len = torch.tensor([3])
    v, n, s = dag_viterbi(links, None, P_len, impl="torch", length_norm="vertices")
    assert v[0, : int(n[0])].tolist() == [0, 2] and math.isclose(float(s[0]), -1.0)
    v, n, s = dag_viterbi(links, None, P_len, impl="torch", length_norm="transitions")
    assert v[0, : int(n[0])].tolist() == [0, 1, 2] and math.isclose(float(s[0]), -1.6)
    with pytest.raises(ValueError, match="length_norm must be"):
        dag_viterbi(links, None, P_len, impl="torch", length_norm="tokens")


def test_links_only_and_neg_inf():
    for seed in range(3):
        links, tok, P_len = _links_tok(seed=30 + seed, neg_inf_frac=0.4)
        _check(links, None, P_len, 1.0, None)
        _check(links, tok, P_len, 2.0, 4)
        _check(links, tok, P_len, 2.0, 4, "transitions")


def test_fp16_inputs():
    links, tok, P_len = _links_tok(seed=40)
    l16, t16 = clean(links).half(), tok.half()
    verts, lengths, scores = dag_viterbi(l16, t16, P_len, beta=1.0, impl="torch")
    assert scores.dtype == torch.float16
    ref = bf.joint_viterbi(l16.double(), t16.double(), P_len, P_len, 1.0)
    for b, (path, best) in enumerate(ref):
        assert tuple(verts[b, : int(lengths[b])].tolist()) == path
        assert math.isclose(float(scores[b]), best, rel_tol=2e-3, abs_tol=2e-3)


def test_max_length_one_needs_single_vertex_graph():
    links, tok, P_len = _links_tok(seed=41)
    verts, lengths, scores = dag_viterbi(links, tok, P_len, max_length=1, impl="torch")
    assert lengths.tolist() == [1 if p == 1 else 0 for p in P_LEN]
    assert verts[2, 0] == 0 and math.isclose(float(scores[2]), float(tok[2, 0]))
