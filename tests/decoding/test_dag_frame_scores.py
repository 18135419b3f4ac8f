"""Framed DAGs: lookahead scores the frame vertices with the model's own <s>/</s> log-probs.

Hand DAG of 4 vertices (0 = <s>, 3 = </s>); content vertices 1 and 2 emit token 5 and 6 with log-prob log 0.5.
Links from 0: to 1 log 0.4, to 2 log 0.2, to 3 log 0.4; from 1: to 2 log 0.9, to 3 log 0.1; from 2: to 3.
With the end vertex scored log 1 lookahead jumps 0 -> 3 (log 0.4 + 0 > log 0.4 + log 0.5): empty output.
With the model's log P(</s> | v_3) = log 0.3 it takes 0 -> 1 (log 0.4 + log 0.5 > log 0.4 + log 0.3),
then 1 -> 2 (log 0.9 + log 0.5 > log 0.1 + log 0.3) and 2 -> 3: output "5 6".
"""
import math

import torch

from nat_plugins.decoding.dag_decoding import DAGLookahead, frame_logprobs
from nat_plugins.decoding.strategy import DecodingOptions

NEG = float("-inf")
PAD, BOS, EOS = 1, 0, 2


def _graph():
    links = torch.full((1, 4, 4), NEG)
    for (i, j), p in {(0, 1): 0.4, (0, 2): 0.2, (0, 3): 0.4, (1, 2): 0.9, (1, 3): 0.1, (2, 3): 1.0}.items():
        links[0, i, j] = math.log(p)
    lp = torch.full((1, 4, 8), math.log(1e-3))
    lp[0, 1, 5] = lp[0, 2, 6] = math.log(0.5)
    lp[0, 0, BOS] = math.log(0.9)
    lp[0, 3, EOS] = math.log(0.3)
    return links, lp, torch.tensor([4])


def test_frame_logprobs_reads_bos_at_the_first_and_eos_at_the_last_vertex():
    _, lp, lengths = _graph()
    assert torch.allclose(frame_logprobs(lp, lengths, BOS, EOS), torch.tensor([[math.log(0.9), math.log(0.3)]]))
    assert torch.allclose(frame_logprobs(lp, torch.tensor([3]), BOS, EOS)[0, 1], torch.tensor(math.log(1e-3)))


def test_lookahead_with_the_models_frame_scores_does_not_jump_to_the_end():
    links, lp, lengths = _graph()
    strategy = DAGLookahead(DecodingOptions(extra={"decode_beta": 1.0}))
    frame = frame_logprobs(lp, lengths, BOS, EOS)
    content = lp.clone()
    content[..., [BOS, EOS, PAD]] = NEG
    tokens, _, out_len, _ = strategy.decode_graph(links, content, lengths, PAD, framed=True, frame_lp=frame)
    assert out_len.tolist() == [2] and tokens[0, :2].tolist() == [5, 6]
    _, _, out_len, _ = strategy.decode_graph(links, content, lengths, PAD, framed=True)  # log 1 frame scores
    assert out_len.tolist() == [0]
