"""pml_loss: vanilla NAR + progressive modality learning (DiffGLAT App. A).

Checked by hand: the loss is exactly L_last(y) + L_middle(y_merged) + factor * L_length, where the middle
prediction is the first K layers' output through the shared final norm and projection; the canvas is
all-mask; the merged targets come from the data folder by sample id, train vs valid by the model's mode.
"""
import argparse

import pytest
import torch

from nat_plugins.criterions.pml_loss import PMLLoss
from nat_plugins.errors import NATUserError
from nat_plugins.models.cmlm import CMLMModel, cmlm_tiny
from nat_plugins.modules.losses import label_smoothed_nll
from tests.model_builders import build_tiny


class _Task:
    def __init__(self, d):
        self.source_dictionary = self.target_dictionary = d


def _model():
    model, task, d = build_tiny(CMLMModel, cmlm_tiny, decoder_layers=2)
    return model, d


def _sample(d, ids):
    w = [d.index(c) for c in "abcdefgh"]
    src = torch.tensor([[w[0], w[1], w[2], d.eos()], [d.pad(), w[3], w[4], d.eos()]])
    tgt = torch.tensor([[w[5], w[6], w[7], d.eos()], [w[0], w[1], d.eos(), d.pad()]])
    return {"id": torch.tensor(ids), "net_input": {"src_tokens": src, "src_lengths": torch.tensor([4, 3])},
            "target": tgt}


def _write(folder, name, lines):
    (folder / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_loss_is_last_plus_middle_on_merged_targets_plus_length(tmp_path):
    model, d = _model()
    _write(tmp_path, "train.merged", ["x", "h g f", "b a"])  # sample ids 1 and 2 are the batch
    _write(tmp_path, "valid.merged", ["c c c", "d d"])
    crit = PMLLoss(_Task(d), label_smoothing=0.1, pml_layer=1, pml_merged_targets=str(tmp_path))
    sample = _sample(d, [1, 2])
    model.train()
    torch.manual_seed(3)
    model.eval()  # dropout 0 anyway; eval mode reads valid.merged: check that first
    sample_valid = _sample(d, [0, 1])
    loss_v, _, log_v = crit(model, sample_valid)
    model.train()
    loss, sample_size, log = crit(model, sample)
    assert sample_size == 1

    # the same by hand
    src, tgt = sample["net_input"]["src_tokens"], sample["target"]
    real = model.real_target_mask(tgt)
    canvas = tgt.masked_fill(real, model.mask_idx).masked_fill(~real, model.pad)
    assert canvas[real].eq(model.unk).all()
    enc = model.encode(src, sample["net_input"]["src_lengths"])
    dec = model.decoder
    x, pad_mask = dec.embed(canvas)
    h1 = dec.run_layers(x, enc, pad_mask, end=1)
    h2 = dec.run_layers(h1, enc, pad_mask, start=1)
    merged = torch.tensor([[d.index(c) for c in "hgf"], [d.index("b"), d.index("a"), d.pad()]])
    lm, _ = label_smoothed_nll(dec.output_layer(dec.finalize(h1)[real]), merged[real[:, :3]], 0.1)
    ll, _ = label_smoothed_nll(dec.output_layer(dec.finalize(h2)[real]), tgt[real], 0.1)
    n = real.sum()
    length = model.length_predictor.loss(model.length_logits(enc), real.sum(1), model.source_lengths(src)) / 2
    expected = ll.sum() / n + lm.sum() / n + model.length_loss_factor * length
    assert torch.allclose(loss, expected, atol=1e-6)
    assert torch.allclose(log["middle_loss"], lm.sum() / n, atol=1e-6)
    # eval mode used valid.merged: a different merged target gives a different middle loss
    assert not torch.allclose(log_v["middle_loss"], log["middle_loss"])


def test_layer_zero_is_the_vanilla_nar_and_needs_no_file():
    model, d = _model()
    crit = PMLLoss(_Task(d), pml_layer=0)
    loss, _, log = crit(model.train(), _sample(d, [0, 1]))
    assert "middle_loss" not in log
    assert torch.allclose(loss, log["word_ins_loss"] + model.length_loss_factor * log["length_loss"], atol=1e-6)


def test_bad_settings_are_one_line_errors(tmp_path):
    model, d = _model()
    with pytest.raises(NATUserError, match="needs --pml-merged-targets"):
        PMLLoss(_Task(d), pml_layer=1)
    with pytest.raises(NATUserError, match="cannot read"):
        PMLLoss(_Task(d), pml_layer=1, pml_merged_targets=str(tmp_path / "nope"))
    _write(tmp_path, "train.merged", ["a a a a", "a"])
    _write(tmp_path, "valid.merged", ["a"])
    crit = PMLLoss(_Task(d), pml_layer=1, pml_merged_targets=str(tmp_path))
    with pytest.raises(NATUserError, match="has 4 tokens, its target 3"):
        crit(model.train(), _sample(d, [0, 1]))
    crit = PMLLoss(_Task(d), pml_layer=2, pml_merged_targets=str(tmp_path))
    with pytest.raises(NATUserError, match="must be below"):
        crit(model.train(), _sample(d, [0, 1]))


def test_exit_layer_decodes_from_the_first_k_layers():
    model, d = _model()
    canvas = torch.full((1, 3), model.unk)
    src = torch.tensor([[d.index("a"), d.eos()]])
    enc = model.encode(src, torch.tensor([2]))
    x, pad_mask = model.decoder.embed(canvas)
    first = model.decoder.finalize(model.decoder.run_layers(x, enc, pad_mask, end=1))
    model.set_exit_layer(1)
    assert torch.allclose(model.decoder.features(canvas, enc), first)
    model.set_exit_layer(None)
    assert not torch.allclose(model.decoder.features(canvas, enc), first)
    with pytest.raises(NATUserError, match="has 2 layers"):
        model.set_exit_layer(3)
