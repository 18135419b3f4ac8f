"""sunmask_loss: masked positions only, 1 / (1 + K) per example (§2.2), the same mask at both steps."""
import math

import pytest
import torch

from model_builders import ToyTask, build_tiny
from nat_plugins.criterions.sunmask_loss import SUNMASKLoss, masked_example_loss
from nat_plugins.errors import NATUserError
from nat_plugins.models.sundae import SUNDAEModel, sundae_tiny
from nat_plugins.models.sunmask import SUNMASKModel, sunmask_tiny
from test_sundae_loss import sample_of


def test_masked_example_loss_by_hand():
    # V = 3; logits chosen so that log-probs are easy: row-wise log_softmax by hand.
    logits = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]],
                           [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]]])
    gold = torch.tensor([[0, 0, 2], [1, 1, 1]])
    corrupted = torch.tensor([[True, False, True], [False, False, False]])
    loss, nll = masked_example_loss(logits, gold, corrupted)
    lp00 = -math.log(3)
    lp02 = -math.log(2 + math.exp(2))
    # example 0: K = 2 -> (nll_0 + nll_2) / 3; position 1 (kept) does not count
    assert math.isclose(float(nll[0]), -(lp00 + lp02) / 3, rel_tol=1e-6)
    assert float(nll[1]) == 0.0  # nothing corrupted: no loss
    assert torch.equal(loss, nll)  # no smoothing


def test_label_smoothing_is_applied_to_the_same_positions():
    logits = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(0))
    gold = torch.randint(0, 5, (2, 4), generator=torch.Generator().manual_seed(1))
    corrupted = torch.tensor([[True, True, False, False], [False, True, True, True]])
    loss, nll = masked_example_loss(logits, gold, corrupted, epsilon=0.1)
    lp = logits.log_softmax(-1)
    tok = 0.9 * -lp.gather(-1, gold[..., None]).squeeze(-1) + 0.1 * -lp.mean(-1)
    by_hand = (tok * corrupted).sum(1) / (1 + corrupted.sum(1))
    assert torch.allclose(loss, by_hand, atol=1e-6)


def test_criterion_uses_one_mask_for_both_steps_and_only_corrupted_positions_get_gradient():
    model, task, d = build_tiny(SUNMASKModel, sunmask_tiny)
    model.train()
    crit = SUNMASKLoss(task)
    calls = []
    original = model.canvas_logits

    def spy(tokens, encoder_out, length_d=None, mask=None):
        logits = original(tokens, encoder_out, length_d, mask)
        logits.retain_grad()
        calls.append((tokens.clone(), mask.clone(), logits))
        return logits

    model.canvas_logits = spy
    sample = sample_of(d)
    loss, size, log = crit(model, sample, generator=torch.Generator().manual_seed(3))
    loss.backward()
    assert len(calls) == 2 and size == 1
    (x0, m0, l0), (x1, m1, l1) = calls
    assert torch.equal(m0, m1)
    clean, in_canvas, _ = model.gold_canvas(sample["target"])
    assert torch.equal(x0[m0], clean[m0])  # trusted positions hold the clean tokens
    assert not m0[~in_canvas].any()
    # Logits at trusted (m = 1) or non-canvas positions get no gradient, at either step.
    for logits in (l0, l1):
        assert logits.grad[m0 | ~in_canvas].abs().max() == 0
    assert {"l1", "l2", "masked_share"} <= set(log)
    assert math.isclose(float(log["word_loss"]), (float(log["l1"]) + float(log["l2"])) / 2, rel_tol=1e-6)


def test_criterion_refuses_other_models():
    model, task, d = build_tiny(SUNDAEModel, sundae_tiny)
    with pytest.raises(NATUserError, match="sunmask"):
        SUNMASKLoss(task)(model, sample_of(d))
