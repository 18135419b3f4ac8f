"""dag_loss: value, gradients, glancing, size filtering, non-finite handling, schedule.

(Named ``test_dat_loss.py``: ``tests/ops/test_dag_loss.py`` already exists and
pytest's default import mode needs unique test-module basenames.)
"""
import argparse
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models"))

from test_dat import build_dat  # noqa: E402

from nat_plugins.criterions import dag_loss as dag_loss_mod  # noqa: E402
from nat_plugins.criterions.dag_loss import DAGLoss, force_glanced, target_match  # noqa: E402
from nat_plugins.ops import dag_log_likelihood  # noqa: E402


class _Task:
    def __init__(self, d):
        self.source_dictionary = self.target_dictionary = d


def make_sample(d, pairs):
    """Left-padded sources, right-padded targets ending in </s>, as fairseq batches them."""
    eos, pad = d.eos(), d.pad()
    srcs = [[d.index(w) for w in s.split()] + [eos] for s, _ in pairs]
    tgts = [[d.index(w) for w in t.split()] + [eos] for _, t in pairs]
    S, T = max(map(len, srcs)), max(map(len, tgts))
    src = torch.tensor([[pad] * (S - len(s)) + s for s in srcs])
    tgt = torch.tensor([t + [pad] * (T - len(t)) for t in tgts])
    return {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([len(s) for s in srcs])},
            "target": tgt, "ntokens": int(tgt.ne(pad).sum())}


PAIRS = [("a b c", "d e f g"), ("a b", "c d"), ("h", "e f")]


def test_loss_is_mean_per_token_nll_and_gradients_reach_tokens_and_links():
    model, d = build_dat("3")
    crit = DAGLoss(_Task(d), glance_p="0")
    sample = make_sample(d, PAIRS)
    model.train()
    loss, sample_size, log = crit(model, sample)
    assert sample_size == 1 and log["skipped"] == 0 and log["nonfinite"] == 0

    # by hand, with the same graph: -log P(Y|X) / |Y| averaged over sentences
    model.eval()
    crit_eval = DAGLoss(_Task(d), glance_p="0")
    loss_eval, _, _ = crit_eval(model, sample)
    src = sample["net_input"]["src_tokens"]
    enc = model.encode(src, sample["net_input"]["src_lengths"])
    P = model.graph_lengths(src, 3.0)
    assert P.tolist() == [9, 6, 3]
    logits, links = model.dag_forward(enc, model.graph_canvas(P))
    lp = torch.log_softmax(logits.float(), -1)
    expected = []
    for b, (_, t) in enumerate(PAIRS):
        ids = [d.index(w) for w in t.split()]
        match = lp[b, :, ids].T[None]  # [1, T, P]
        ll = dag_log_likelihood(match, links[b:b + 1], P[b:b + 1], torch.tensor([len(ids)]), impl="torch")
        expected.append(-ll / len(ids))
    assert loss_eval.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)

    model.train()
    model.zero_grad()
    loss.backward()
    out_proj = model.decoder.output_projection.weight  # tied with the token embeddings
    for name, p in (("token output", out_proj), ("link query", model.links.query.weight),
                    ("link key", model.links.key.weight), ("link gate", model.links.gate.weight),
                    ("link positions", model.links.link_positions.weight),
                    ("encoder", model.encoder.layers[0].fc1.weight)):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_framed_targets_are_scored_as_bos_content_eos():
    model, d = build_dat("4", frame=True)
    model.eval()
    sample = make_sample(d, PAIRS)
    loss, _, log = DAGLoss(_Task(d), glance_p="0")(model, sample)
    src = sample["net_input"]["src_tokens"]
    P = model.graph_lengths(src, 4.0)
    logits, links = model.dag_forward(model.encode(src, sample["net_input"]["src_lengths"]), model.graph_canvas(P))
    lp = torch.log_softmax(logits.float(), -1)
    expected = []
    for b, (_, t) in enumerate(PAIRS):
        ids = [d.bos()] + [d.index(w) for w in t.split()] + [d.eos()]
        ll = dag_log_likelihood(lp[b, :, ids].T[None], links[b:b + 1], P[b:b + 1], torch.tensor([len(ids)]),
                                impl="torch")
        expected.append(-ll / len(ids))
    assert log["skipped"] == 0 and log["target_tokens"] == 4 + 2 + 2 + 3 * 2
    assert loss.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)
    # the frame needs two more vertices: "h" (3 vertices) holds "e f" alone, not "<s> e f </s>"
    plain, _ = build_dat("3")
    framed, _ = build_dat("3", frame=True)
    small = make_sample(d, [("h", "e f")])
    assert DAGLoss(_Task(d), glance_p="0")(plain.eval(), small)[2]["skipped"] == 0
    assert DAGLoss(_Task(d), glance_p="0")(framed.eval(), small)[2]["skipped"] == 1


def test_too_small_graphs_are_skipped_and_counted():
    model, d = build_dat("2")
    crit = DAGLoss(_Task(d), glance_p="0.5")
    # "h" -> 2 vertices cannot hold 3 target tokens; the others are fine
    sample = make_sample(d, [("a b c", "d e f"), ("h", "e f g")])
    model.train()
    loss, _, log = crit(model, sample)
    assert log["skipped"] == 1 and torch.isfinite(loss)
    loss.backward()
    # a batch with nothing usable still gives a zero loss that can be backpropagated
    loss, _, log = crit(model, make_sample(d, [("h", "e f g")]))
    assert log["skipped"] == 1 and loss.item() == 0.0
    loss.backward()


def test_non_finite_sentences_are_zeroed_and_counted(monkeypatch):
    model, d = build_dat("3")
    crit = DAGLoss(_Task(d), glance_p="0")

    def first_is_inf(match, links, P, T, impl="auto"):
        ll = dag_log_likelihood(match, links, P, T, impl=impl)
        return torch.where(torch.arange(ll.numel()) == 0, torch.full_like(ll, float("-inf")), ll)

    monkeypatch.setattr(dag_loss_mod, "dag_log_likelihood", first_is_inf)
    model.train()
    loss, _, log = crit(model, make_sample(d, PAIRS))
    assert log["nonfinite"] == 1 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_glancing_feeds_aligned_targets_with_the_same_dropout_and_forces_their_tokens(monkeypatch):
    model, d = build_dat("3", dropout=0.3)
    crit = DAGLoss(_Task(d), glance_p="1.0")
    calls = []
    real_forward = model.dag_forward

    def spy(encoder_out, canvas):
        out = real_forward(encoder_out, canvas)
        calls.append((canvas.clone(), out[0].detach().clone()))
        return out

    monkeypatch.setattr(model, "dag_forward", spy)
    sample = make_sample(d, PAIRS)
    model.train()
    loss, _, log = crit(model, sample)
    assert len(calls) == 2
    (first_in, first_out), (second_in, second_out) = calls
    assert first_in.eq(model.unk).sum() + first_in.eq(model.pad).sum() == first_in.numel()
    glanced = second_in.ne(first_in)
    # p = 1: every wrongly predicted aligned token is glanced (untrained model: none right)
    assert log["glanced"] == int(glanced.sum()) > 0
    targets = [[d.index(w) for w in t.split()] for _, t in PAIRS]
    for b in range(3):
        fed = second_in[b][glanced[b]].tolist()
        assert all(tok in targets[b] for tok in fed)
    # Same dropout in both passes (dropout 0.3, training mode): with nothing
    # glanced (p tiny rounds to 0 vertices) the two passes are bit-identical.
    calls.clear()
    crit_small = DAGLoss(_Task(d), glance_p="1e-6")
    crit_small(model, sample)
    assert torch.equal(calls[0][0], calls[1][0])
    assert torch.equal(calls[0][1], calls[1][1])


def test_force_glanced_keeps_only_the_fed_token():
    target = torch.tensor([[5, 6, 5]])
    match = torch.zeros(1, 3, 4)
    alignment = torch.tensor([[0, -1, 1, 2]])
    glanced = torch.tensor([[False, False, True, True]])  # vertex 2 fed 6, vertex 3 fed 5
    out = force_glanced(match, target, alignment, glanced)
    assert torch.isfinite(out[0, :, :2]).all()  # not glanced: untouched
    assert torch.isneginf(out[0, :, 2]).tolist() == [True, False, True]
    assert torch.isneginf(out[0, :, 3]).tolist() == [False, True, False]  # y_0 = y_2 = 5 both allowed


def test_target_match_equals_log_softmax_gather():
    logits = torch.randn(2, 5, 7, requires_grad=True)
    target = torch.tensor([[1, 2, 3], [4, 4, 0]])
    m = target_match(logits, target)
    ref = torch.log_softmax(logits, -1).gather(-1, target[:, None, :].expand(2, 5, 3)).transpose(1, 2)
    assert torch.allclose(m, ref, atol=1e-6)


def test_schedule_follows_the_update_number_fairseq_restores():
    model, d = build_dat("3")
    crit = DAGLoss(_Task(d), glance_p="0.5:0.1@200k")
    model.set_num_updates(100_000)  # what the trainer calls each step and after loading a checkpoint
    assert crit.glance_ratio(model) == pytest.approx(0.3)
    crit.set_num_updates(200_000)
    assert crit.glance_ratio(argparse.Namespace()) == pytest.approx(0.1)
    model.train()
    _, _, log = crit(model, make_sample(d, PAIRS))
    assert log["glance_p"] == pytest.approx(0.3)
    model.eval()
    _, _, log = crit(model, make_sample(d, PAIRS))
    assert log["glance_p"] == 0.0  # no glancing in validation


def _unfused_match(token_logits, target):
    """The loss's vocabulary step before issue #20 (oracle): gather, then subtract ``torch.logsumexp``."""
    logits = token_logits.float()
    B, P, _ = logits.shape
    picked = logits.gather(-1, target[:, None, :].expand(B, P, target.size(1)))
    return (picked - torch.logsumexp(logits, dim=-1, keepdim=True)).transpose(1, 2)


@pytest.mark.parametrize("pairs", [PAIRS, [("a b c", "d e f"), ("h", "e f g"), ("a", "b")]])
def test_fused_vocabulary_steps_give_the_unfused_loss_and_gradients(monkeypatch, pairs):
    """Glancing on, dropout on, a skipped sentence in the second batch: same loss, gradients within 1e-6."""
    results = []
    for fused in (True, False):
        model, d = build_dat("2", dropout=0.2, seed=3)
        if not fused:
            monkeypatch.setattr(dag_loss_mod, "target_match", _unfused_match)
            monkeypatch.setattr(dag_loss_mod, "glancing_scores",
                                lambda logits, target: (_unfused_match(logits, target), logits.argmax(-1)))
        model.train()
        torch.manual_seed(11)
        loss, _, log = DAGLoss(_Task(d), glance_p="0.7")(model, make_sample(d, pairs))
        loss.backward()
        results.append((loss.detach(), log, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
        monkeypatch.undo()
    (loss_f, log_f, grads_f), (loss_u, log_u, grads_u) = results
    assert log_f["glanced"] == log_u["glanced"] > 0 and log_f["glat_correct"] == log_u["glat_correct"]
    assert torch.equal(loss_f, loss_u)
    assert grads_f.keys() == grads_u.keys()
    for name in grads_f:
        assert (grads_f[name] - grads_u[name]).abs().max().item() <= 1e-6, name


def test_glat_acc_and_glanced_per_sentence_are_logged(monkeypatch):
    model, d = build_dat("3", seed=5)
    crit = DAGLoss(_Task(d), glance_p="0.5")
    seen = {}
    real_select = crit.sampler.select

    def spy(alignment, correct, ratio, generator=None):
        seen["alignment"], seen["correct"] = alignment.clone(), correct.clone()
        return real_select(alignment, correct, ratio, generator)

    monkeypatch.setattr(crit.sampler, "select", spy)
    sample = make_sample(d, PAIRS)
    model.train()
    _, _, log = crit(model, sample)
    # by hand: the hint-free first pass (dropout 0 here), its best alignment and argmax
    src = sample["net_input"]["src_tokens"]
    P = model.graph_lengths(src, 3.0)
    with torch.no_grad():
        logits, links = model.dag_forward(model.encode(src, sample["net_input"]["src_lengths"]), model.graph_canvas(P))
    target, tgt_len, _ = model.dag_target(sample["target"])
    alignment = dag_loss_mod.dag_best_alignment(_unfused_match(logits, target), links, P, tgt_len)
    assert torch.equal(alignment, seen["alignment"])
    right = logits.argmax(-1).eq(target.gather(1, alignment.clamp(min=0))) & alignment.ge(0)
    assert log["glat_aligned"] == int(tgt_len.sum()) and log["glat_correct"] == int(right.sum())
    assert log["glanced_sentences"] == 3

    logged = {}
    monkeypatch.setattr(dag_loss_mod.metrics, "log_scalar",
                        lambda key, value, *a, **k: logged.__setitem__(key, value))
    other = dict(log, glanced=log["glanced"] + 3, glat_correct=0)
    DAGLoss.reduce_metrics([log, other])
    assert logged["glat_acc"] == pytest.approx(log["glat_correct"] / (2 * log["glat_aligned"]))
    assert logged["glanced_per_sent"] == pytest.approx((2 * log["glanced"] + 3) / 6)
    # validation (no glancing) logs neither
    logged.clear()
    model.eval()
    DAGLoss.reduce_metrics([crit(model, sample)[2]])
    assert "glat_acc" not in logged and "glanced_per_sent" not in logged
