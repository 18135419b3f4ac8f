"""Constrained joint-Viterbi read-out on the hand DAG of test_dag_decoding.py.

Hand answers (beta = 1, ln(path prob) / (|a| - 1), joint-Viterbi's per-transition rule; tokens
other than a vertex's best have p = 1e-3):

* constraint "t7" (only v3 likes it, p .2): [0,2,3,4] .25*.55*1.0 * .9*.9*.2*.9 = .0200 -> ln/3 = -1.303
  beats [0,3,4] .40*1.0 * .9*.2*.9 = .0648 -> ln/2 = -1.368 and any path putting t7 on a 1e-3 vertex
  ([0,1,4] with v1 = t7: .24*.9*1e-3*.9, ln/2 = -4.1)
  => t4 t6 t7 t8 (the unconstrained answer is t4 t5 t8).
"""
import math

import torch

from nat_plugins.decoding.dag_constraints import constrained_decode_graph, merge_repeats_keeping, phrase_tensors
from nat_plugins.decoding.dag_decoding import DAGJointViterbi
from nat_plugins.decoding.strategy import DecodingOptions
from test_dag_decoding import PAD, hand_dag


def strategy():
    return DAGJointViterbi(DecodingOptions(extra={"decode_viterbi_beta": 1.0}))


def run(constraints, framed=False, rows=None):
    rows = rows or len(constraints)
    links, tok = hand_dag()
    links, tok = links.expand(rows, -1, -1).clone(), tok.expand(rows, -1, -1).clone()
    return constrained_decode_graph(strategy(), links, tok, torch.full((rows,), 5), PAD, framed, constraints, 1.0)


def out(tokens, lengths, b=0):
    return tokens[b, : int(lengths[b])].tolist()


def test_single_token_constraint_by_hand():
    tokens, scores, lengths, score, failed = run([[[7]]])
    assert out(tokens, lengths) == [4, 6, 7, 8] and not failed[0]
    assert math.isclose(float(score[0]), math.log(.25 * .55 * .9 * .9 * .2 * .9) / 3, rel_tol=1e-5)
    assert math.isclose(float(scores[0, 2]), math.log(.2), rel_tol=1e-5)


def test_no_constraints_is_plain_joint_viterbi_and_rows_are_independent():
    tokens, _, lengths, score, failed = run([[[7]], []])
    links, tok = hand_dag()
    ref_tok, _, ref_len, ref_score = strategy().decode_graph(links, tok, torch.tensor([5]), PAD)
    assert out(tokens, lengths, 1) == out(ref_tok, ref_len) == [4, 5, 8]
    assert math.isclose(float(score[1]), float(ref_score[0]), rel_tol=1e-6)
    assert out(tokens, lengths, 0) == [4, 6, 7, 8] and not failed.any()


def test_phrase_with_a_repeat_survives_the_merge():
    tokens, _, lengths, _, failed = run([[[5, 5], [8]]])
    o = out(tokens, lengths)
    assert not failed[0]
    assert any(o[i:i + 2] == [5, 5] for i in range(len(o))), o
    assert o.index(8) > o.index(5)


def test_ordered_phrases_come_out_in_order():
    for phrases in ([[6], [5]], [[5], [6]]):
        tokens, _, lengths, _, failed = run([phrases])
        o = out(tokens, lengths)
        assert not failed[0]
        i = o.index(phrases[0][0])
        assert phrases[1][0] in o[i + 1:], (phrases, o)


def test_infeasible_constraints_fall_back_to_the_unconstrained_output():
    tokens, _, lengths, score, failed = run([[[1, 2, 3], [4, 5, 6]], [[7]]])
    assert failed.tolist() == [True, False]
    assert out(tokens, lengths, 0) == [4, 5, 8] and math.isfinite(float(score[0]))
    assert out(tokens, lengths, 1) == [4, 6, 7, 8]


def test_framed_model_never_puts_constraints_on_the_frame_vertices():
    # Framed: v0 and v4 emit <s>/</s>, dropped from the output; "t4" (v0's favourite) must go inside.
    tokens, _, lengths, _, failed = run([[[4]]], framed=True)
    o = out(tokens, lengths)
    assert not failed[0] and o.count(4) == 1 and len(o) >= 1
    tokens, _, lengths, _, failed = run([[[4, 4, 4, 4]]], framed=True)
    assert failed[0]  # 4 tokens on the 3 inner vertices


def test_merge_repeats_keeping():
    toks = torch.tensor([[3, 3, 3, 4, 4, 5, 5, 1]])
    keep = torch.tensor([[False, True, True, False, False, False, True, False]])
    sc = torch.arange(8.0)[None]
    t, s, n = merge_repeats_keeping(toks, sc, torch.tensor([7]), PAD, keep)
    # run 3 3 3 keeps its two constraint copies; run 4 4 shrinks to one; run 5 5 keeps the constraint one
    assert t[0, : int(n[0])].tolist() == [3, 3, 4, 5]
    assert s[0, : int(n[0])].tolist() == [1.0, 2.0, 3.0, 6.0]


def test_phrase_tensors():
    tok, end, C = phrase_tensors([[[5, 6], [7]], [], [[9]]], "cpu")
    assert tok.tolist() == [[5, 6, 7], [0, 0, 0], [9, 0, 0]]
    assert end.tolist() == [[False, True, True], [False] * 3, [True, False, False]]
    assert C.tolist() == [3, 0, 1]


def test_no_bpe_continuation_piece_right_before_a_phrase():
    """With t6 a continuation piece ("ab@@"), t4 t6 t7 t8 would read "t4 t6t7 t8" once the BPE is removed.
    The best path that keeps "t7" a word of its own is [0, 3, 4]: ln(.40 * .9 * .2 * .9) / 2 = -1.368 beats
    [0, 2, 3, 4] with v2's best word-final token (p 1e-3): ln(.25 * .55 * .9 * 1e-3 * .2 * .9) / 3 = -3.6."""
    links, tok = hand_dag()
    continuation = torch.zeros(tok.size(-1), dtype=torch.bool)
    continuation[6] = True
    tokens, _, lengths, score, failed = constrained_decode_graph(
        strategy(), links, tok, torch.full((1,), 5), PAD, False, [[[7]]], 1.0, continuation=continuation)
    assert out(tokens, lengths) == [4, 7, 8] and not failed[0]
    assert math.isclose(float(score[0]), math.log(.40 * .9 * .2 * .9) / 2, rel_tol=1e-5)
    # without the mask the continuation piece stays (the by-hand answer above)
    plain_tokens, _, plain_lengths, _, _ = run([[[7]]])
    assert out(plain_tokens, plain_lengths) == [4, 6, 7, 8]


def test_continuation_mask_reads_subword_nmt_markers():
    from fairseq.data import Dictionary

    from nat_plugins.decoding.dag_constraints import continuation_mask

    d = Dictionary()
    for w in ("ab@@", "stürzen", "Haus"):
        d.add_symbol(w)
    mask = continuation_mask(d)
    assert mask.tolist() == [w.endswith("@@") for w in d.symbols] and int(mask.sum()) == 1
    plain = Dictionary()
    plain.add_symbol("Haus")
    assert continuation_mask(plain) is None


def test_phrase_stays_a_word_even_when_the_merge_swallows_a_copy_of_it():
    """Random graphs where the phrase's token (3) is likely everywhere: the vertex before the phrase must not
    emit a copy of it (the repeat merge would drop that copy and glue the continuation piece before it)."""
    g = torch.Generator().manual_seed(0)
    N, P, V = 40, 8, 6
    links = torch.randn(N, P, P, generator=g).triu(1).masked_fill(torch.ones(P, P).tril().bool(), float("-inf"))
    links = links.log_softmax(-1).nan_to_num(neginf=float("-inf"))
    tok = torch.randn(N, P, V, generator=g)
    tok[..., 3] += 2.0  # the phrase token is often the best word-final token too
    tok[..., 1] += 1.0  # and a continuation piece often the best token
    continuation = torch.tensor([False, True, True, False, False, False])
    tokens, _, lengths, _, failed = constrained_decode_graph(
        strategy(), links, tok.log_softmax(-1), torch.full((N,), P), PAD, False, [[[3]]] * N, 1.0,
        continuation=continuation)
    for b in range(N):
        seq = out(tokens, lengths, b)
        assert not failed[b]
        assert any(t == 3 and (i == 0 or not continuation[seq[i - 1]]) for i, t in enumerate(seq)), seq
