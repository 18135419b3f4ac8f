"""scripts/gpu/gpu_check.sh --dry-run: every step of the GPU evidence script on the CPU, tiny sizes.

The script runs once per GPU loan with no chance of a second try, so CI runs all
of it here: kernels through the CPU shim with the self-check, the GPU parity test
file (skips), each kernel on the sanitizer's tiny batch, the op benchmark's GPU
code with reference ops, five tiny models trained, decoded and scored, the report.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which(os.environ.get("CXX", "g++")) is None,
                    reason="needs bash and a C++ compiler (the CPU shim)")
def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PY=sys.executable, WORK=str(tmp_path / "work"), OMP_NUM_THREADS="1")
    env.pop("OUT", None)
    res = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu", "gpu_check.sh"), "--dry-run", "--out", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    steps = {s["step"]: s["status"] for s in results["steps"]}
    expected = {"env", "install", "kernels", "parity_tests", "tiny_batch", "memcheck", "racecheck", "bench_ops",
                "tiny_corpus", "models"}
    assert set(steps) == expected, steps
    assert all(v == "ok" or v.startswith("skipped") for v in steps.values()), steps
    assert results["kernels"]["self_check_passed"] and results["kernels"]["built"].startswith("CPU shim")
    assert results["dag_ops"]["gpu"]["parity_fp32"]["met"]
    for name in ("ar", "cmlm", "sundae", "dat", "diffglat"):
        model = results[f"model_{name}"]
        assert "error" not in model and model["updates_done"] == 2, model
        assert 0.0 <= model["score"]["bleu_tok"] <= 100.0 and model["score"]["sentences"] == 8
    md = (out / "results.md").read_text()
    assert "| diffglat | 2/2 |" in md and "Dry run (CPU, tiny sizes, nothing measured): True" in md
