"""cmlm_loss against a hand computation on a tiny real model."""
import argparse
import math

import pytest
import torch
from fairseq.data import Dictionary

from nat_plugins.criterions.cmlm_loss import CMLMLoss
from nat_plugins.models.cmlm import CMLMModel, cmlm_tiny


class _Task:
    def __init__(self, d):
        self.source_dictionary = self.target_dictionary = d


@pytest.fixture()
def model_and_task():
    d = Dictionary()
    for w in "a b c d e f".split():
        d.add_symbol(w)
    args = argparse.Namespace(dropout=0.0)
    cmlm_tiny(args)
    torch.manual_seed(0)
    task = _Task(d)
    return CMLMModel.build_model(args, task).eval(), task, d


def test_loss_matches_hand_computation(model_and_task, monkeypatch):
    model, task, d = model_and_task
    eos, pad = d.eos(), d.pad()
    a, b, c = d.index("a"), d.index("b"), d.index("c")
    src = torch.tensor([[a, b, eos]])
    tgt = torch.tensor([[c, a, b, eos]])
    fixed_mask = torch.tensor([[True, False, True, False]])

    def fake_mask(target, real, mask_idx, generator=None):
        return target.masked_fill(fixed_mask, mask_idx), fixed_mask

    monkeypatch.setattr("nat_plugins.criterions.cmlm_loss.uniform_mask", fake_mask)
    crit = CMLMLoss(task, label_smoothing=0.1)
    sample = {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([3])}, "target": tgt}
    loss, sample_size, log = crit(model, sample)

    # by hand
    enc = model.encode(src, torch.tensor([3]))
    canvas = torch.tensor([[model.unk, a, model.unk, pad]])  # eos is not part of the canvas
    lp = torch.log_softmax(model.decoder(canvas, enc).float(), -1)[0]
    terms = []
    for pos, gold in ((0, c), (2, b)):
        nll = -lp[pos, gold]
        terms.append(0.9 * nll + 0.1 * (-lp[pos].mean()))
    word = sum(terms) / 2
    len_lp = torch.log_softmax(model.length_logits(enc).float(), -1)[0]
    length = -len_lp[3]  # 3 real target tokens
    expected = word + 0.1 * length
    assert sample_size == 1
    assert torch.allclose(loss, expected, atol=1e-5)
    assert math.isclose(float(log["length_loss"]), float(length.detach()), rel_tol=1e-5)
    assert log["ntokens"] == 3


def test_unmasked_positions_carry_no_gradient_into_output(model_and_task):
    model, task, d = model_and_task
    eos = d.eos()
    a, b = d.index("a"), d.index("b")
    sample = {"net_input": {"src_tokens": torch.tensor([[a, b, eos]]), "src_lengths": torch.tensor([3])},
              "target": torch.tensor([[b, b, a, a, eos]])}
    torch.manual_seed(3)
    loss, _, _ = CMLMLoss(task, 0.0)(model, sample)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.encoder.embed_tokens.weight.grad is not None
