"""examples/quickstart/run.sh end to end on a tiny corpus: update budgets, mode selection, report path, curves.

The corpus is the word-by-word synthetic one of test_quickstart_pipeline.py; models are the quickstart's own
entries (models.sh) with a 4-update budget.  Checks: both models stop at exactly 4 updates; the report, the
curve PNG and the curve JSON go under RUN_DIR (nothing in benchmarks/); the curve has a validation loss at
every checkpoint and a BLEU point per curve checkpoint; trainings run with the malloc tuning; a larger budget
resumes the same recipe and another recipe sets the earlier run aside.  Mode selection is checked with PLAN_ONLY (no training):
DEVICE=gpu uses the GPU flags and budgets, DEVICE=cpu adds --cpu, DEVICE=auto follows torch.cuda (mocked by a
fake python that answers the CUDA probe).
"""
import json
import os
import subprocess

import pytest

from test_quickstart_pipeline import REPO_ROOT, _synthetic_corpus

pytest.importorskip("fairseq")
RUN = os.path.join(REPO_ROOT, "examples", "quickstart", "run.sh")
PY = os.path.join(REPO_ROOT, ".venv", "bin", "python")


def _run(env, check=True):
    full = {k: v for k, v in os.environ.items() if k != "BUDGET"}
    full.update(OMP_NUM_THREADS="1", PY=os.environ.get("PY", PY))
    full.update(env)
    result = subprocess.run(["bash", RUN], cwd=REPO_ROOT, env=full, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_plan_follows_the_device_mode(tmp_path):
    gpu = _run({"PLAN_ONLY": "1", "DEVICE": "gpu", "MODELS": "ar,dat"}).stdout
    assert "mode: gpu" in gpu and "ar 3000 dat 3000" in gpu
    assert "--arch dat_base" in gpu and "--upsample-scale 8" in gpu and "--fp16" in gpu and "--cpu" not in gpu
    cpu = _run({"PLAN_ONLY": "1", "DEVICE": "cpu"}).stdout
    assert "mode: cpu" in cpu and "ar 900 cmlm 1300" in cpu and "--max-update 900" in cpu and "--cpu" in cpu
    fake = tmp_path / "python"  # answers the CUDA probe with "yes" and nothing else is run in a plan
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert "mode: gpu" in _run({"PLAN_ONLY": "1", "DEVICE": "auto", "PY": str(fake)}).stdout
    fake.write_text('#!/bin/sh\ncase "$*" in *cuda*) exit 1;; esac\nexit 0\n')  # no CUDA
    assert "mode: cpu" in _run({"PLAN_ONLY": "1", "DEVICE": "auto", "PY": str(fake)}).stdout
    assert "UPDATES=3" in _run({"PLAN_ONLY": "1", "DEVICE": "cpu", "UPDATES": "3"}).stdout.replace(
        "--max-update 3", "UPDATES=3")
    bad = _run({"PLAN_ONLY": "1", "BUDGET": "5"}, check=False)
    assert bad.returncode != 0
    assert "malloc tuning on" in cpu
    assert "malloc tuning off" in _run({"PLAN_ONLY": "1", "DEVICE": "cpu", "MALLOC_TUNING": "off"}).stdout
    bad = _run({"PLAN_ONLY": "1", "DEVICE": "cpu", "MALLOC_TUNING": "maybe"}, check=False)
    assert bad.returncode != 0 and "MALLOC_TUNING must be on or off" in bad.stderr


def test_tiny_run_has_exact_update_counts_report_under_runs_and_curves(tmp_path):
    _synthetic_corpus(tmp_path / "raw")
    (tmp_path / "raw" / "stats.json").write_text("{}")
    run_dir = tmp_path / "runs"
    env = {"DATA_RAW": str(tmp_path / "raw"), "DATA_WORK": str(tmp_path / "work"),
           "DATA_BIN": str(tmp_path / "bin"), "RUN_DIR": str(run_dir), "BPE_MERGES": "40", "MODELS": "ar,cmlm",
           "UPDATES": "4", "SAVE_EVERY": "2", "CURVE_EVERY": "2", "AVG_LAST": "2", "DEVICE": "cpu"}
    out = _run(env).stdout
    assert "[ar] validation at 4 updates" in out and "[cmlm] validation at 4 updates" in out
    assert out.count("done training in") == 2
    report = run_dir / "quickstart.md"
    text = report.read_text()
    assert "Mode: cpu" in text and "| Updates |" in text and "| Length ratio | Empty or punctuation only |" in text
    for name in ("ar", "cmlm"):
        assert f"| {name}: " in text
        assert json.loads((run_dir / name / "score.json").read_text())["sentences"] == 20
    curves = json.loads((run_dir / "quickstart_curves.json").read_text())
    assert [u for u, _ in curves["ar"]["valid_loss"]] == [2, 4]
    assert [u for u, _ in curves["cmlm"]["bleu"]] == [2, 4]
    assert (run_dir / "quickstart_curves.png").stat().st_size > 1000
    rows = [line for line in text.splitlines() if line.startswith("| ar: ")]
    assert rows and rows[0].split("|")[2].strip() == "4"
    # the trainings ran with the malloc tuning, and train.env says so (learning_curves.py reads it)
    env_lines = (run_dir / "cmlm" / "train.env").read_text().splitlines()
    assert "MALLOC_MMAP_MAX_=0" in env_lines and "MALLOC_TRIM_THRESHOLD_=17179869184" in env_lines

    # a larger budget for the same recipe resumes from the checkpoints (the earlier curve point is kept) ...
    out = _run({**env, "MODELS": "cmlm", "UPDATES": "6"}).stdout
    assert "cmlm: same recipe with another budget: resuming" in out
    assert "[cmlm] validation at 6 updates" in out and "[cmlm] validation at 2 updates" not in out
    assert (run_dir / "cmlm" / "curve" / "2.json").exists()
    # ... and another recipe starts afresh, with the earlier run set aside, not deleted
    out = _run({**env, "MODELS": "cmlm", "UPDATES": "2", "SEED": "2"}).stdout
    assert "the training command changed; the earlier run is set aside" in out
    aside = [p for p in run_dir.iterdir() if p.name.startswith("cmlm.stale-")]
    assert len(aside) == 1 and (aside[0] / "curve" / "6.json").exists()
    assert "[cmlm] validation at 2 updates" in out
