"""scripts/experiments/reproduce.py: the reproduction suite's driver and report.

The report's acceptance lines and curve summaries are checked on hand-made records; the driver runs end to end
on a tiny preset (data -> 20 updates -> decode every kept checkpoint -> JSON/Markdown/PNG) and a second call
reuses everything (no retraining, no re-decoding).
"""
import json
import os

import pytest

pytest.importorskip("fairseq")

import reproduce  # noqa: E402
import reproduce_report as rr  # noqa: E402


def _rec(exp, system, metric, value, updates):
    return {"experiment": exp, "system": system, "metric": metric, "value": value, "updates": updates}


def test_final_cells_take_the_largest_update_and_trend_reads_the_last_two_points():
    records = [_rec("easy", "dat:lookahead", "seq_acc", 40.0, 250), _rec("easy", "dat:lookahead", "seq_acc", 99.5, 500),
               _rec("easy", "dat:lookahead", "token_acc", 99.9, 500), _rec("easy", "dat:lookahead", "token_acc", 70, 250)]
    cells = rr.final_cells(records)
    assert cells[("easy", "dat:lookahead")] == {"updates": 500, "seq_acc": 99.5, "token_acc": 99.9}
    curve = rr.curves(records)[("easy", "dat:lookahead", "seq_acc")]
    assert curve == [(250, 40.0), (500, 99.5)]
    assert rr.trend(curve) == "rising"
    assert rr.trend([(1, 50.0), (2, 50.5)]) == "flat"
    assert rr.trend([(1, 99.0), (2, 100.0)]) == "converged"
    assert rr.trend([(1, 50.0)]) == "-"


def test_acceptance_lines_compare_with_the_issue_thresholds():
    cells = {("easy", "dat:lookahead"): {"updates": 1, "seq_acc": 99.0},
             ("full", "vanilla:1pass"): {"updates": 1, "seq_acc": 6.0},
             ("easy", "cmlm:10iter"): {"updates": 1, "seq_acc": 30.0},
             ("easy", "cmlm:1pass"): {"updates": 1, "seq_acc": 30.0},
             ("easy", "sundae_l12:T10"): {"updates": 1, "seq_acc": 50.0},
             ("easy", "sundae_l1:T10"): {"updates": 1, "seq_acc": 26.0},
             ("full", "pml_long:middle"): {"updates": 6000, "seq_acc": 0.0}}
    curve = {("easy", "dat:lookahead", "seq_acc"): [(250, 3.0), (500, 100.0), (750, 99.0)]}
    lines = {claim: (measured, verdict) for claim, measured, verdict in rr.acceptance(cells, curve)}
    verdicts = {claim: verdict for claim, (_, verdict) in lines.items()}
    assert lines["easy: DAT (glancing) reaches >= 99% sequence accuracy"] == (
        "best 100.0 at 500 updates; last 99.0", "met")
    assert rr.best_point([(1, 5.0), (2, 7.0), (3, 7.0)]) == (7.0, [2, 3])
    assert verdicts["Table 2: vanilla NAR sequence accuracy <= 5%"] == "MISSED"
    assert verdicts["Table 2: AR sequence accuracy >= 95%"] == "MISSING"
    assert lines["Table 2: the same at twice the budget (pml_long)"] == ("0.0", "MISSED")
    assert verdicts["easy: CMLM 10 iterations > 1 pass (sequence accuracy)"] == "MISSED"  # a tie is not a win
    # +24 points but L(1) is 26: twice L(1) would be 52, so the margin needed is 26
    assert verdicts["easy: SUNDAE L(1:2) beats L(1) at T=10 by >= max(20 points, 2x L(1))"] == "MISSED"


def test_tiny_suite_end_to_end_and_cached(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "PRESETS", {"tiny": dict(num_tokens=5, length=4, modalities=2, train=300,
                                                            valid=20, test=20)})
    tiny = [*reproduce_experiments_common(), "--max-tokens", "300", "--lr", "1e-2"]
    monkeypatch.setattr(reproduce, "MODELS", {"cmlm": {
        "desc": "tiny CMLM", "train": ["--user-dir", "nat_plugins", "--task", "nat_translation", "--arch", "cmlm_tiny",
                                       "--criterion", "cmlm_loss", *tiny],
        "decodings": [("2iter", ["--task", "nat_translation", "--decode-iterations", "2"]),
                      ("1pass", ["--task", "nat_translation", "--decode-iterations", "1"])]}})
    monkeypatch.setattr(reproduce, "EXPERIMENTS", [{"preset": "tiny", "name": "cmlm", "model": "cmlm", "updates": 20,
                                                    "curve_every": 10}])
    monkeypatch.setattr(reproduce, "SECONDS_PER_UPDATE", {"cmlm": (0.1, 0.1)})
    report = tmp_path / "out" / "r.md"
    argv = ["--jobs", "1", "--work-dir", str(tmp_path), "--report", str(report)]
    assert reproduce.main(argv) == 0
    records = json.loads((tmp_path / "out" / "r.json").read_text())
    seen = {(r["system"], r["metric"], r["updates"]) for r in records}
    # the curve decoding at both kept checkpoints, the other decoding at the last one only; the validation
    # loss of the checkpoint beside every decoding of it
    metrics = ("token_acc", "seq_acc", "mixed_outputs", "valid_min_loss")
    assert seen == {("cmlm:2iter", m, u) for m in metrics for u in (10, 20)} | {("cmlm:1pass", m, 20) for m in metrics}
    assert all(r["experiment"] == "tiny" and 0 <= r["value"] <= 100 for r in records)
    losses = {(r["system"], r["updates"]): r["value"] for r in records if r["metric"] == "valid_min_loss"}
    assert losses[("cmlm:2iter", 20)] == losses[("cmlm:1pass", 20)] > 0  # one loss per checkpoint
    text = report.read_text()
    assert "| tiny | cmlm:2iter | 20 |" in text and "Best seq. acc." in text and "## Acceptance" in text and "<details>" in text
    assert "Valid min loss (bits)" in text and f"| {losses[('cmlm:2iter', 20)]:.3f} |" in text
    assert (tmp_path / "out" / "r.png").stat().st_size > 1000
    train_log = tmp_path / "runs" / "repro" / "tiny" / "cmlm" / "train.log"
    before = train_log.read_text()
    eval_dir = tmp_path / "runs" / "repro" / "tiny" / "cmlm" / "eval"
    stamps = {p: os.path.getmtime(eval_dir / p) for p in os.listdir(eval_dir)}
    assert reproduce.main(argv) == 0  # everything cached
    assert train_log.read_text() == before
    assert {p: os.path.getmtime(eval_dir / p) for p in os.listdir(eval_dir)} == stamps

    # A run evaluated before valid_min_loss existed: --report-only adds it from the checkpoints, decoding nothing.
    run_records = tmp_path / "runs" / "repro" / "tiny" / "cmlm" / "records.json"
    run_records.write_text(json.dumps([r for r in json.loads(run_records.read_text())
                                       if r["metric"] != "valid_min_loss"]))
    for name in os.listdir(eval_dir):
        if name.startswith("valid_min_loss_"):
            os.remove(eval_dir / name)
    decoded = {p: os.path.getmtime(eval_dir / p) for p in os.listdir(eval_dir)}
    assert reproduce.main(argv + ["--report-only"]) == 0
    lazy = json.loads((tmp_path / "out" / "r.json").read_text())
    assert {(r["system"], r["updates"]): r["value"] for r in lazy if r["metric"] == "valid_min_loss"} == losses
    assert {p: os.path.getmtime(eval_dir / p) for p in decoded} == decoded
    assert any(r["metric"] == "valid_min_loss" for r in json.loads(run_records.read_text()))


def reproduce_experiments_common():
    import reproduce_experiments

    return [f for f in reproduce_experiments.COMMON if f not in ("--max-tokens", "1024", "--lr", "2e-3")]


def test_a_changed_recipe_sets_the_old_run_aside_and_a_raised_budget_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "WORK", str(tmp_path), raising=False)
    monkeypatch.setattr(reproduce, "MODELS", {"m": {"desc": "", "train": ["--arch", "x", "--lr", "1e-3"], "decodings": []}})
    exp = {"preset": "easy", "name": "m", "model": "m", "updates": 100}
    folder = reproduce.run_dir(exp)
    os.makedirs(folder)
    log = os.path.join(folder, "train.log")

    def header(command):
        with open(log, "a", encoding="utf-8") as out:
            out.write("# 2026-12-03 10:00:00 " + " ".join(command) + "\nnum_updates 50\n")

    # the same recipe with another budget and save dir (a moved folder): resumed, nothing moved
    old = reproduce.train_command(dict(exp, updates=50))
    old[old.index("--save-dir") + 1] = "/elsewhere"
    header(old)
    reproduce.set_aside_if_stale(exp)
    assert os.path.isdir(folder)
    # another learning rate: the old run is kept beside, under a new name, and the folder is free
    header([w if w != "1e-3" else "2e-3" for w in reproduce.train_command(exp)])
    reproduce.set_aside_if_stale(exp)
    assert not os.path.exists(folder)
    aside = [n for n in os.listdir(os.path.dirname(folder)) if n.startswith("m.stale-")]
    assert len(aside) == 1 and "recipe changed" in capsys.readouterr().out
    assert os.path.exists(os.path.join(os.path.dirname(folder), aside[0], "train.log"))
