"""fairseq-interactive --constraints on a DA-Transformer: every feasible phrase appears, in order."""
import logging
import os
import sys

import pytest

from conftest import ROOT, hypotheses, run_train, train_args
from interactive_cli import interactive_args, run_interactive
from nat_plugins.errors import NATUserError

sys.path.insert(0, os.path.join(ROOT, "scripts", "evaluation"))
from constraints_eval import contains_in_order  # noqa: E402

# (source, [phrases]) from the test split's references: word-for-word w -> W
CASES = [
    ("w1 w2 w3 w4", ["W2 W3"]),
    ("w5 w6 w7 w8 w9", ["W9", "W5"]),           # out of the reference order: still forced in this order
    ("w10 w11 w12", ["W12", "W11", "W10"]),
    ("w3 w3 w4", ["W3 W3"]),                     # a phrase with a repeat survives the merge
    ("w13 w14 w15 w16", []),                     # no constraint on this line
]


@pytest.fixture(scope="module")
def tiny_dat(tiny_bin, tmp_path_factory):
    save = str(tmp_path_factory.mktemp("dat_constraints_ckpt"))
    run_train(train_args(tiny_bin, save, arch="dat_tiny", criterion="dag_loss", max_update=20,
                         extra=("--upsample-scale", "3",)))
    return os.path.join(save, "checkpoint_last.pt")


@pytest.fixture(scope="module")
def tiny_diffglat_briefly(tiny_bin, tmp_path_factory):
    save = str(tmp_path_factory.mktemp("diffglat_constraints_ckpt"))
    run_train(train_args(tiny_bin, save, arch="diffglat_tiny", criterion="diffglat_loss", max_update=10,
                         extra=("--diffusion-warmup-updates", "5")))
    return os.path.join(save, "checkpoint_last.pt")


@pytest.mark.parametrize("model", ["dat", "diffglat"])
def test_interactive_constraints_are_met(model, tiny_bin, tiny_dat, tiny_diffglat_briefly, tmp_path, capsys):
    path = tiny_dat if model == "dat" else tiny_diffglat_briefly
    lines = ["\t".join([src, *phrases]) for src, phrases in CASES]
    out = run_interactive(interactive_args(tiny_bin, path, "--constraints"), lines, tmp_path, capsys)
    hyps = hypotheses(out)
    assert sorted(hyps) == list(range(len(CASES)))
    for i, (_, phrases) in enumerate(CASES):
        assert contains_in_order(hyps[i], phrases), (phrases, hyps[i])
    assert out.count("C-1\t") == 2  # fairseq prints the constraints it read


def test_unplaceable_constraints_warn_and_give_the_free_translation(tiny_bin, tiny_dat, tmp_path, capsys, caplog):
    long = " ".join(["W1"] * 30)  # 30 tokens cannot fit a graph of 3 x 2 vertices
    with caplog.at_level(logging.WARNING):
        out = run_interactive(interactive_args(tiny_bin, tiny_dat, "--constraints"), [f"w1 w2\t{long}"],
                              tmp_path, capsys)
    # --constraints picks joint-Viterbi for DAG models: the fallback is its free output
    free = hypotheses(run_interactive(interactive_args(tiny_bin, tiny_dat, "--decoding-strategy", "dag_joint_viterbi"),
                                      ["w1 w2"], tmp_path, capsys))
    assert hypotheses(out) == free
    assert "do not fit its graph" in caplog.text and "source: w1 w2" in caplog.text


def test_constraints_need_a_dag_model_and_ordered_mode(tiny_bin, tiny_dat, tiny_cmlm, tmp_path, capsys):
    with pytest.raises(NATUserError, match="ordered"):
        run_interactive(interactive_args(tiny_bin, tiny_dat, "--constraints", "unordered"), ["w1\tW1"],
                        tmp_path, capsys)
    with pytest.raises(NATUserError, match="dag_joint_viterbi"):
        run_interactive(interactive_args(tiny_bin, tiny_dat, "--constraints", "--decoding-strategy", "dag_greedy"),
                        ["w1\tW1"], tmp_path, capsys)
    with pytest.raises(NATUserError, match="dag_joint_viterbi"):
        run_interactive(interactive_args(tiny_bin, tiny_cmlm, "--constraints"), ["w1\tW1"], tmp_path, capsys)


def test_constraints_report_meets_every_feasible_constraint_and_times_the_cost(tiny_bin, tiny_dat, tmp_path):
    """scripts/evaluation/constraints_report.py end to end (fairseq-interactive subprocesses) on the tiny data."""
    import json
    import subprocess

    raw = os.path.join(os.path.dirname(tiny_bin), "raw")
    out = tmp_path / "report.md"
    command = [sys.executable, os.path.join(ROOT, "scripts", "evaluation", "constraints_report.py"),
               "--checkpoint", tiny_dat, "--data-bin", tiny_bin, "--source", os.path.join(raw, "test.en"),
               "--reference", os.path.join(raw, "test.de"), "--raw-reference", "", "--bpe-codes", "",
               "--limit", "12", "--reps", "1", "--output", str(out), "--work-dir", str(tmp_path / "work")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "report.json").read_text())
    rows = {r["system"]: r for r in result["rows"]}
    constrained = rows["constrained, joint-Viterbi"]
    assert result["sentences"] == 12 and constrained["with_constraints"] == 12
    assert constrained["feasible_met"] == constrained["with_constraints"] - constrained["infeasible"] > 0
    assert constrained["satisfaction_rate"] == 100.0 and constrained["unmet_ids"] == []
    assert rows["free, joint-Viterbi"]["time_vs_free_viterbi"] == 1.0 and constrained["seconds"] > 0
    assert set(rows) == {"free, joint-Viterbi", "constrained, joint-Viterbi",
                         "free, --decoding-strategy dag_lookahead --decode-beta 1.0"}
    assert "| constrained, joint-Viterbi | " in out.read_text()
    # bad input: one line, exit 2
    bad = subprocess.run(command[:2] + ["--checkpoint", str(tmp_path / "missing.pt")], capture_output=True,
                         text=True, cwd=ROOT)
    last = bad.stderr.strip().splitlines()[-1]  # (fairseq's import may log a tensorboardX line first)
    assert bad.returncode == 2 and last.startswith("constraints_report.py: error: --checkpoint") and "no such file" in last
