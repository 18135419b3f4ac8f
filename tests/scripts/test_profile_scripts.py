"""scripts/benchmarks/profile_training.py and scripts/benchmarks/profile_decoding.py on tiny settings: they run, report every
system, compare the former vocabulary steps on the same work, and put the patched functions back.

No speed is asserted: the numbers belong to benchmarks/training_speed.md.
"""
import re

import profile_decoding
import profile_training

from nat_plugins.criterions import dag_loss as dag_loss_mod
from nat_plugins.decoding import mask_predict


def test_profile_training_reports_dat_before_and_after_against_cmlm(capsys):
    fused = dag_loss_mod.target_match, dag_loss_mod.glancing_scores
    assert profile_training.main(["--vocab", "100", "--max-tokens", "60", "--batches", "1", "--reps", "1",
                                  "--min-len", "3", "--max-len", "5"]) == 0
    out = capsys.readouterr().out
    for system in ("dat", "cmlm", "dat_before"):
        assert re.search(rf"^\| {system} \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|$", out, re.M), system
    assert "DAT update breakdown" in out and "CMLM update breakdown" in out and "| glancing_scores |" in out
    assert (dag_loss_mod.target_match, dag_loss_mod.glancing_scores) == fused  # timing wrappers removed


def test_the_unfused_dag_loss_gives_the_same_loss():
    d, systems = profile_training.build(200, seed=2)
    model, crit = systems["dat"]
    batch = profile_training.make_batches(d, 1, 160, 3, 6, seed=2)[0]
    model.eval()  # no glancing, no dropout: both runs see the same graph
    assert crit(model, batch)[0].item() == systems["dat_before"][1](model, batch)[0].item()


def test_profile_decoding_compares_ours_before_and_stock_on_the_same_lengths(capsys):
    fused = mask_predict.masked_predictions
    assert profile_decoding.main(["--vocab", "200", "--batch-size", "6", "--reps", "1", "--iterations", "3",
                                  "--min-len", "2", "--max-len", "7"]) == 0
    out = capsys.readouterr().out
    assert "identical best hypotheses, ours vs ours before: 6/6" in out
    for system in ("ours (masked-only projection)", "ours (full log-softmax, before)", "stock fairseq cmlm_transformer"):
        assert re.search(rf"^\| {re.escape(system)} \| [0-9.]+ \| [0-9.]+ \| [0-9.]+x \| \d+ \|$", out, re.M), system
    assert mask_predict.masked_predictions is fused
    # both models got the candidate lengths L-1, L, L+1 (content tokens; stock adds <s> and </s>)
    d, ours, stock = profile_decoding.build(200, seed=1)
    profile_decoding.fix_lengths(ours, stock)
    sample = profile_decoding.make_batch(d, 3, 2, 7, seed=1)
    src = sample["net_input"]["src_tokens"]
    L = ours.source_lengths(src)
    lengths, _ = ours.predict_lengths(None, src, k=3)
    assert lengths.tolist() == [[n - 1, n, n + 1] for n in L.clamp(min=2).tolist()]
    enc = stock.forward_encoder([src, sample["net_input"]["src_lengths"]])
    assert stock.initialize_output_tokens(enc, src).output_tokens.ne(d.pad()).sum(1).tolist() == (L.clamp(min=2) + 2).tolist()
