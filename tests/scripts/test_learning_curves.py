"""scripts/experiments/learning_curves.py and the parallel trainings of examples/quickstart/run.sh.

Hand data: the first update passing a level (including "not reached"), the AR's BLEU at an update
(exact, interpolated, outside), the still-improving verdict, the CPU-time estimates and their refusals,
and the train.log parser (seconds per update across a resume).

Tiny pipeline (one module-scoped run.sh with ``JOBS=2`` on the synthetic corpus of
test_quickstart_pipeline.py, 4 updates per model): both trainings finish; learning_curves.py then decodes
the valid split at every kept curve checkpoint, writes the report under the run directory by default
(never benchmarks/), and a re-run decodes nothing.  A model whose training fails makes run.sh exit
non-zero with a message naming the model and its log, and the other training is stopped.
"""
import json
import os
import subprocess
import time

import pytest

import learning_curves
import learning_curves_report as lcr
from test_quickstart_pipeline import REPO_ROOT, _synthetic_corpus

RUN = os.path.join(REPO_ROOT, "examples", "quickstart", "run.sh")
PY = os.path.join(REPO_ROOT, ".venv", "bin", "python")


# ------------------------------------------------------------------------------------------------ hand data


def test_first_update_reaching_a_level():
    points = [(1000, 0.8), (500, 0.1), (1500, 5.0), (2000, 4.2)]
    assert lcr.first_update_reaching(points, 1) == 1500
    assert lcr.first_update_reaching(points, 5) == 1500  # at the level counts as passing it
    assert lcr.first_update_reaching(points, 0.5) == 1000
    assert lcr.first_update_reaching(points, 10) is None
    assert lcr.first_update_reaching([], 1) is None


def test_bleu_at_exact_interpolated_outside():
    ar = [(500, 2.0), (1000, 6.0)]
    assert lcr.bleu_at(ar, 1000) == (6.0, True)
    assert lcr.bleu_at(ar, 750) == (4.0, False)
    assert lcr.bleu_at(ar, 1200) == (None, False)


def test_trend_verdicts():
    assert lcr.trend([(500, 1.0), (1000, 2.0)], [])[0] == "yes"
    assert lcr.trend([(500, 3.0), (1000, 2.0)], [(500, 5.0), (1000, 4.0)])[0] == "no"
    flat_falling = lcr.trend([(500, 0.0), (1000, 0.1)], [(500, 9.0), (1000, 8.0)])
    assert flat_falling[0] == "yes" and "loss still falling" in flat_falling[1]
    assert lcr.trend([(500, 0.0), (1000, 0.1)], [(500, 9.0), (1000, 8.99)])[0] == "no"
    assert lcr.trend([(500, 1.0)], [])[0] == "-"


def _model(kind, points, updates, spu):
    return {"kind": kind, "valid": [{"updates": u, "bleu_tok": b} for u, b in points], "updates": updates,
            "seconds_per_update": spu}


def test_levels_and_estimates():
    models = {
        "ar": _model("ar", [(500, 3.0), (1000, 12.0), (1500, 15.0)], 1500, 1.0),
        "cmlm": _model("nat", [(500, 0.2), (1000, 1.5), (1500, 6.0)], 1500, 0.6),
        "dat": _model("nat", [(500, 0.0)], 500, 3.6),
        "sundae": _model("nat", [(500, 0.1), (1000, 0.4), (1500, 0.9), (2000, 0.9)], 2000, None),
    }
    table = lcr.levels_table(models, [1, 5, 10])
    assert table["cmlm"]["1"] == {"updates": 1000, "ar_bleu": 12.0, "ar_exact": True}
    assert table["cmlm"]["5"]["updates"] == 1500 and table["cmlm"]["10"]["updates"] is None
    found = {(e["model"], e["level"]): e for e in lcr.estimates(models, table, [1, 5, 10])}
    dat5 = found[("dat", 5)]
    # the assumption: dat needs the 1500 updates cmlm needed, at dat's own 3.6 s/update
    assert dat5["reference_model"] == "cmlm" and dat5["hours_total"] == 1.5 and dat5["hours_more"] == 1.0
    assert "no NAT model reached 10" in found[("dat", 10)]["note"]
    assert "assumption fails" not in found[("sundae", 1)]["note"] and "not measured" in found[("sundae", 1)]["note"]
    models["sundae"]["seconds_per_update"] = 1.0
    again = {(e["model"], e["level"]): e for e in lcr.estimates(models, table, [1, 5, 10])}
    assert "assumption fails" in again[("sundae", 1)]["note"]  # trained 2000 > the 1000 cmlm needed
    assert not any(e["model"] in ("ar", "cmlm") and e["level"] in (1, 5) for e in again.values())


def test_train_log_parser():
    log = "\n".join([
        "| INFO | train_inner | epoch 001:  25 / 9 loss=9.1, ups=1.2, num_updates=25, lr=1, wall=30",
        "| INFO | train_inner | epoch 001:  50 / 9 loss=8.1, ups=1.2, num_updates=50, lr=1, wall=50",
        "| INFO | valid | epoch 001 | valid on 'valid' subset | loss 8.5 | nll_loss 7 | num_updates 50",
        "| INFO | train_inner | epoch 001:  75 / 9 loss=8.0, ups=1.2, num_updates=75, lr=1, wall=80",
        # resumed from the checkpoint at 50 updates: a new stretch, not a negative interval
        "| INFO | train_inner | epoch 001:  75 / 9 loss=8.0, ups=1.2, num_updates=75, lr=1, wall=10",
        "| INFO | train_inner | epoch 001:  100 / 9 loss=8.0, ups=1.2, num_updates=100, lr=1, wall=30",
        "| INFO | valid | epoch 001 | valid on 'valid' subset | loss 8.2 | nll_loss 7 | num_updates 100",
        "| INFO | fairseq_cli.train | done training in 95.0 seconds",
    ])
    parsed = learning_curves.parse_train_log(log)
    assert parsed["valid_loss"] == [(50, 8.5), (100, 8.2)]
    assert parsed["updates"] == 100 and parsed["train_seconds"] == 95.0
    assert parsed["seconds_per_update"] == pytest.approx((20 + 30 + 20) / 75, abs=1e-3)


def test_bad_input_is_one_line(tmp_path, capsys):
    assert learning_curves.main(["--run-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nat_plugins: error: ") and "\n" not in err


# --------------------------------------------------------------------------------------------- tiny pipeline


from test_quickstart_run import _run as _run_sh  # noqa: E402  (run.sh with the tests' environment)


def _tiny_env(root):
    _synthetic_corpus(root / "raw")
    (root / "raw" / "stats.json").write_text("{}")
    return {"DATA_RAW": str(root / "raw"), "DATA_WORK": str(root / "work"), "DATA_BIN": str(root / "bin"),
            "RUN_DIR": str(root / "runs"), "BPE_MERGES": "40", "MODELS": "ar,cmlm", "UPDATES": "4",
            "SAVE_EVERY": "2", "CURVE_EVERY": "2", "AVG_LAST": "2", "DEVICE": "cpu"}


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory):
    """run.sh with JOBS=2 on the tiny corpus: (env, stdout)."""
    root = tmp_path_factory.mktemp("jobs")
    env = dict(_tiny_env(root), JOBS="2")
    return env, _run_sh(env).stdout


def _threads(jobs):
    """run.sh's default THREADS: the cores nproc reports, shared by the JOBS trainings."""
    cores = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or 1)
    return max(1, cores // jobs)


def test_jobs_2_trains_both_models(parallel_run):
    env, out = parallel_run
    assert "JOBS=2" in out and f"{_threads(2)} torch thread" in out
    for name in ("ar", "cmlm"):
        assert f"[{name}] validation at 4 updates" in out
        folder = os.path.join(env["RUN_DIR"], name)
        assert os.path.exists(os.path.join(folder, "train.done"))
        assert open(os.path.join(folder, "train.env")).read().split() == [
            "JOBS=2", f"THREADS={_threads(2)}", "MALLOC_MMAP_MAX_=0", "MALLOC_TRIM_THRESHOLD_=17179869184"]
        assert json.load(open(os.path.join(folder, "score.json")))["sentences"] == 20


def test_plan_shows_jobs_threads_and_warm_start(tmp_path):
    fake = tmp_path / "python"  # a plan runs python only to check that fairseq imports: answer "yes" at once
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)

    def plan(check=True, **env):
        return _run_sh(dict(env, PLAN_ONLY="1", PY=str(fake)), check=check)

    out = plan(DEVICE="cpu", JOBS="2").stdout
    assert "JOBS=2" in out and f"{_threads(2)} torch thread" in out
    assert f"OMP_NUM_THREADS={_threads(2)} MKL_NUM_THREADS={_threads(2)} " in out
    warm = plan(DEVICE="cpu", MODELS="ar,cmlm", WARM_START="ar", THREADS="3").stdout
    assert "OMP_NUM_THREADS=3 " in warm
    assert "--init-from-ar runs/quickstart/ar/checkpoints/checkpoint_last.pt" in warm.split("cmlm:")[1]
    assert "--init-from-ar" not in warm.split("cmlm:")[0]
    assert f"--init-from-ar {RUN}" in plan(DEVICE="cpu", MODELS="cmlm", WARM_START=RUN).stdout  # any file
    assert "JOBS=1" in plan(DEVICE="gpu").stdout
    for bad in ({"MODELS": "cmlm", "WARM_START": "ar"}, {"WARM_START": "no/such.pt"}, {"JOBS": "0"},
                {"THREADS": "x"}):
        assert plan(check=False, DEVICE="cpu", **bad).returncode != 0, bad


def test_learning_curves_on_the_tiny_run(parallel_run, capsys):
    env, _ = parallel_run
    run_dir = env["RUN_DIR"]
    argv = ["--run-dir", run_dir, "--every", "2", "--data-bin", env["DATA_BIN"], "--raw-dir", env["DATA_RAW"],
            "--threads", "1", "--note", "tiny"]
    assert learning_curves.main(argv) == 0
    assert "decoding valid at 2 updates" in capsys.readouterr().out
    data = json.load(open(os.path.join(run_dir, "learning_curves.json")))  # default: under the run dir
    assert set(data["models"]) == {"ar", "cmlm"} and data["every"] == 2 and data["levels"] == [1, 5, 10]
    for name, model in data["models"].items():
        assert [p["updates"] for p in model["valid"]] == [2, 4]
        assert model["updates"] == 4
        assert model["test"]["sentences"] == 20 and "score.json" in model["test"]["source"]
        assert len(model["examples"]) == 3 and model["still_improving"] in ("yes", "no")
        assert model["train_threads"] == str(_threads(2)) and model["valid_loss"][-1][0] == 4
        assert os.path.exists(os.path.join(run_dir, name, "learning_curve", "valid_4.json"))
    assert set(data["first_pass"]["cmlm"]) == {"1", "5", "10"}
    text = open(os.path.join(run_dir, "learning_curves.md")).read()
    assert "## When the NAT passes 1, 5, 10 valid BLEU" in text and "| cmlm | 1 |" in text
    assert os.path.getsize(os.path.join(run_dir, "learning_curves.png")) > 1000
    assert not os.path.exists(os.path.join(REPO_ROOT, "benchmarks", "learning_curves.json")) or \
        json.load(open(os.path.join(REPO_ROOT, "benchmarks", "learning_curves.json")))["run_dir"] != run_dir
    # cached: a re-run decodes nothing
    assert learning_curves.main(argv + ["--models", "cmlm"]) == 0
    assert "decoding" not in capsys.readouterr().out


def test_a_failing_training_fails_the_run(tmp_path):
    env = dict(_tiny_env(tmp_path), JOBS="2", UPDATES="300")
    fake = tmp_path / "python"  # the real python, except that the CMLM training fails at once
    fake.write_text(f'#!/bin/sh\ncase "$*" in *fairseq_cli.train*cmlm_loss*) echo "boom" >&2; exit 3;; esac\n'
                    f'exec "{os.path.abspath(PY)}" "$@"\n')
    fake.chmod(0o755)
    start = time.monotonic()
    result = _run_sh(dict(env, PY=str(fake)), check=False)
    assert result.returncode != 0
    assert "cmlm" in result.stderr and os.path.join("cmlm", "train.log") in result.stderr
    # the AR training (300 updates, minutes) was stopped, not waited for
    assert time.monotonic() - start < 120 and not os.path.exists(os.path.join(env["RUN_DIR"], "ar", "train.done"))


def test_quickstart_report_places_its_models_on_the_long_run(tmp_path):
    import quickstart_report

    long_run = tmp_path / "benchmarks" / "learning_curves.md"
    missing = quickstart_report.long_run_notes(str(tmp_path / "runs" / "q.md"), {}, long_run=str(long_run))
    assert "not recorded yet" in missing[0]
    long_run.parent.mkdir()
    long_run.write_text("# curves\n")
    (tmp_path / "benchmarks" / "learning_curves.json").write_text(json.dumps({
        "models": {"cmlm": {"valid": [{"updates": 500, "bleu_tok": 0.4}, {"updates": 1000, "bleu_tok": 2.5},
                                      {"updates": 4000, "bleu_tok": 11.0}]}},
        "first_pass": {"cmlm": {"1": {"updates": 1000}, "5": {"updates": 2000}, "10": {"updates": None}}}}))
    notes = quickstart_report.long_run_notes(str(tmp_path / "runs" / "quickstart" / "q.md"),
                                             {"cmlm": {"updates": 550}, "ar": {"updates": 450}},
                                             long_run=str(long_run))
    assert "](../../benchmarks/learning_curves.md)" in notes[0]  # a link relative to the report
    assert notes[1] == ("cmlm on the long run: valid BLEU 0.40 at 500 updates, 11.00 at 4000 updates; "
                        "passes valid BLEU 1 at 1000 updates, 5 at 2000 updates, 10 not reached.")
    assert len(notes) == 2  # no long-run curve of the AR: no note
