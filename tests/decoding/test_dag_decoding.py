"""DAG decoding strategies on a hand-built graph with hand-computed answers.

The graph (5 vertices; the best token of each vertex and its probability):

    v0: t4 (.9)   v1: t5 (.5)   v2: t6 (.9)   v3: t7 (.2)   v4: t8 (.9)

    links  0->1 .30  0->2 .25  0->3 .40  0->4 .05
           1->2 .10  1->3 .10  1->4 .80
           2->3 .55  2->4 .45
           3->4 1.0

* greedy (argmax link): 0 -> 3 (.40) -> 4                         => t4 t7 t8
* lookahead, beta = 1 (link x next token prob):
    from 0: v1 .30*.5=.150, v2 .25*.9=.225, v3 .40*.2=.080, v4 .045 -> v2
    from 2: v3 .55*.2=.110, v4 .45*.9=.405 -> v4                    => t4 t6 t8
* joint-Viterbi, beta = 1 (ln path prob / (|a| - 1), per transition as the DA-Transformer reference):
    [0,1,4] .30*.80 * .9*.5*.9 = .0972 -> ln/2 = -1.165   (best)
    [0,2,4] .25*.45 * .9*.9*.9 = .0820 -> ln/2 = -1.251
    [0,3,4] .40*1.0 * .9*.2*.9 = .0648 -> ln/2 = -1.368
    [0,4]   .05     * .9*.9    = .0405 -> ln/1 = -3.206
    [0,2,3,4] .25*.55*1 * .9*.9*.2*.9 = .0200 -> ln/3 = -1.303     => t4 t5 t8
"""
import math

import pytest
import torch

from nat_plugins.decoding.dag_decoding import (
    DAGGreedy, DAGJointViterbi, DAGLookahead, DAGSample, DAGSampleLenNorm, merge_repeats,
)
from nat_plugins.decoding.strategy import STRATEGIES, DecodingOptions

PAD = 1
V = 9
NEG = float("-inf")
LINKS = {(0, 1): .30, (0, 2): .25, (0, 3): .40, (0, 4): .05, (1, 2): .10, (1, 3): .10, (1, 4): .80,
         (2, 3): .55, (2, 4): .45, (3, 4): 1.0}
BEST = [(4, .9), (5, .5), (6, .9), (7, .2), (8, .9)]


def hand_dag(pad_to=5):
    """links [1, P, P] and token log-probs [1, P, V] of the graph above (padded to ``pad_to`` vertices)."""
    links = torch.full((1, pad_to, pad_to), NEG)
    for (i, j), p in LINKS.items():
        links[0, i, j] = math.log(p)
    tok = torch.full((1, pad_to, V), math.log(1e-3))
    for j, (t, p) in enumerate(BEST):
        tok[0, j, t] = math.log(p)
    return links, tok


def decode(cls, rows=1, generator=None, **extra):
    temperature = extra.pop("temperature", 1.0)
    strategy = cls(DecodingOptions(temperature=temperature, extra=extra))
    links, tok = hand_dag()
    links, tok = links.expand(rows, -1, -1).clone(), tok.expand(rows, -1, -1).clone()
    return strategy.decode_graph(links, tok, torch.full((rows,), 5), PAD, generator)


def as_lists(tokens, lengths):
    return [tokens[i, : int(lengths[i])].tolist() for i in range(tokens.size(0))]


def test_registered_for_dat_with_lookahead_as_default():
    for name in ("dag_greedy", "dag_lookahead", "dag_joint_viterbi", "dag_sample", "dag_sample_lennorm"):
        assert STRATEGIES[name].families == ("dat",)
    auto = [n for n, c in STRATEGIES.items() if "dat" in c.families and getattr(c, "default", True)]
    assert auto == ["dag_lookahead"]


def test_greedy():
    tokens, scores, lengths, score = decode(DAGGreedy)
    assert as_lists(tokens, lengths) == [[4, 7, 8]]
    assert scores[0, :3].tolist() == pytest.approx([math.log(.9), math.log(.2), math.log(.9)], abs=1e-6)
    assert score.item() == pytest.approx((2 * math.log(.9) + math.log(.2)) / 3, abs=1e-6)


def test_lookahead():
    tokens, _, lengths, _ = decode(DAGLookahead, decode_beta=1.0)
    assert as_lists(tokens, lengths) == [[4, 6, 8]]
    # beta = 0 is greedy
    tokens, _, lengths, _ = decode(DAGLookahead, decode_beta=0.0)
    assert as_lists(tokens, lengths) == [[4, 7, 8]]


def test_joint_viterbi():
    tokens, _, lengths, score = decode(DAGJointViterbi, decode_viterbi_beta=1.0)
    assert as_lists(tokens, lengths) == [[4, 5, 8]]
    assert score.item() == pytest.approx(math.log(.30 * .80 * .9 * .5 * .9) / 2, abs=1e-5)


def test_sample_top_p_and_temperature():
    # top-p 0.3 keeps only the most probable successor: the greedy path, always.
    tokens, _, lengths, _ = decode(DAGSample, rows=50, generator=torch.Generator().manual_seed(0), decode_top_p=0.3)
    assert all(t == [4, 7, 8] for t in as_lists(tokens, lengths))
    # a very low temperature is greedy as well
    tokens, _, lengths, _ = decode(DAGSample, rows=50, generator=torch.Generator().manual_seed(0), temperature=1e-3)
    assert all(t == [4, 7, 8] for t in as_lists(tokens, lengths))
    # temperature 1, no nucleus: first transitions follow the link probabilities
    tokens, _, lengths, _ = decode(DAGSample, rows=4000, generator=torch.Generator().manual_seed(0))
    second = tokens[:, 1]
    freq = {t: float((second == t).float().mean()) for t in (5, 6, 7, 8)}
    # v4 reached directly from v0 (p .05) emits t8 as second token
    for t, p in ((5, .30), (6, .25), (7, .40), (8, .05)):
        assert freq[t] == pytest.approx(p, abs=0.03), freq


def test_sampling_is_reproducible_with_a_seed():
    a = decode(DAGSample, rows=20, generator=torch.Generator().manual_seed(3))[0]
    b = decode(DAGSample, rows=20, generator=torch.Generator().manual_seed(3))[0]
    assert torch.equal(a, b)


def test_length_normalised_choice_among_samples():
    tokens, _, lengths, score = decode(DAGSampleLenNorm, rows=300, generator=torch.Generator().manual_seed(0),
                                       decode_viterbi_beta=1.0)
    best = int(score.argmax())
    # [0,1,4] is sampled with probability .24, so it is among 300 samples; it is the normalised optimum.
    assert as_lists(tokens, lengths)[best] == [4, 5, 8]
    assert score[best].item() == pytest.approx(math.log(.0972) / 3, abs=1e-5)
    # every sampled path is scored by its own normalised joint log-prob
    greedy_rows = [i for i, t in enumerate(as_lists(tokens, lengths)) if t == [4, 7, 8]]
    assert greedy_rows and score[greedy_rows[0]].item() == pytest.approx(math.log(.0648) / 3, abs=1e-5)


def test_batched_graphs_of_different_sizes_and_repeat_merging():
    links5, tok5 = hand_dag(pad_to=6)
    # second graph: 3 vertices, all emitting t4 -> merged into a single t4
    links3 = torch.full((1, 6, 6), NEG)
    links3[0, 0, 1], links3[0, 0, 2], links3[0, 1, 2] = math.log(.7), math.log(.3), 0.0
    links3[0, 3:, :] = 5.0  # garbage beyond P_b must be ignored
    links3[0, :, 3:] = 5.0
    tok3 = torch.full((1, 6, V), math.log(1e-3))
    tok3[0, :, 4] = 0.0
    links = torch.cat([links5, links3])
    tok = torch.cat([tok5, tok3])
    lengths = torch.tensor([5, 3])
    for cls, first in ((DAGGreedy, [4, 7, 8]), (DAGLookahead, [4, 6, 8]), (DAGJointViterbi, [4, 5, 8])):
        tokens, scores, out_len, _ = cls(DecodingOptions()).decode_graph(links, tok, lengths, PAD)
        assert as_lists(tokens, out_len) == [first, [4]], cls.name
        assert tokens[1, 1:].eq(PAD).all()


def test_merge_repeats():
    tokens = torch.tensor([[5, 5, 6, 6, 6, 5, 9], [7, 7, 7, 1, 1, 1, 1]])
    scores = torch.arange(14, dtype=torch.float).view(2, 7)
    out, sc, n = merge_repeats(tokens, scores, torch.tensor([6, 3]), PAD)
    assert n.tolist() == [3, 1]
    assert out.tolist() == [[5, 6, 5], [7, PAD, PAD]]
    assert sc.tolist() == [[0, 2, 5], [7, 0, 0]]


def test_framed_graphs_drop_their_end_vertices_and_do_not_score_them():
    """Trained on <s> y </s>: v0 and v4 emit the frame (log 1 in the search), the output is the middle.

    joint-Viterbi, beta = 1, per transition: [0,1,4] .30*.80*.5 = .120 -> ln/2 = -1.060 (best; [0,2,4]
    .10125 -> -1.145, [0,3,4] .080 -> -1.263, [0,2,3,4] .02475 -> ln/3 = -1.233, [0,4] .05 -> -2.996); lookahead, beta = 1: from 0, v2 .225 beats v1 .150 and
    v4 .05; from 2, v4 .45 beats v3 .11.
    """
    links, tok = hand_dag()
    expected = {DAGGreedy: [7], DAGLookahead: [6], DAGJointViterbi: [5]}
    for cls, middle in expected.items():
        strategy = cls(DecodingOptions(extra=dict(decode_beta=1.0, decode_viterbi_beta=1.0)))
        tokens, _, n, score = strategy.decode_graph(links, tok, torch.tensor([5]), PAD, framed=True)
        assert as_lists(tokens, n) == [middle], cls.name
    assert score.item() == pytest.approx(math.log(.30 * .80 * .5) / 2, abs=1e-5)
    one = DAGJointViterbi(DecodingOptions()).decode_graph(links[:, :1, :1], tok[:, :1], torch.tensor([1]), PAD,
                                                         framed=True)
    assert one[2].tolist() == [0]


def test_one_vertex_graph():
    links = torch.full((1, 1, 1), NEG)
    tok = torch.full((1, 1, V), -5.0)
    tok[0, 0, 6] = -0.1
    for cls in (DAGGreedy, DAGLookahead, DAGJointViterbi, DAGSample):
        tokens, _, n, _ = cls(DecodingOptions()).decode_graph(links, tok, torch.tensor([1]), PAD)
        assert as_lists(tokens, n) == [[6]], cls.name
