"""scripts/benchmarks/benchmark.py: the clock (on a stub that sleeps a known time),
entry parsing, the quickstart mapping, batching and the report.

No speed is asserted anywhere: only that time is *measured* correctly.
"""
import json
import os
import time

import pytest

import benchmark
import benchmark_report
import benchmark_timing as timing

SLEEP = 0.03  # seconds per call of the stub model


class SleepRunner:
    """A stub model: every call sleeps SLEEP seconds and echoes its input."""

    backend = "stub"
    compute_type = "none"
    kind = "AR"
    is_nat = False

    def __init__(self, name):
        self.name = name
        self.calls = 0

    def supports(self, device):
        return device == "cpu"

    def activate(self, device, threads):
        pass

    def deactivate(self):
        pass

    def sync(self):
        return None

    def prepare(self, ids):
        return list(ids)

    def run(self, prepared):
        self.calls += 1
        time.sleep(SLEEP)
        return [[f"t{i}"] for i in prepared]

    def tokens(self, output):
        return output


def test_percentile_matches_linear_interpolation():
    values = [5, 1, 4, 2, 3]
    assert timing.median(values) == 3
    assert timing.percentile(values, 90) == pytest.approx(4.6)
    assert timing.percentile([7], 90) == 7


def test_latency_of_a_sleeping_stub_is_measured_within_10_percent():
    stubs = [SleepRunner("a"), SleepRunner("b")]
    ids = list(range(6))
    batches = [[0, 1, 2], [3, 4, 5]]
    rows, outputs, _ = benchmark.measure(stubs, [("cpu", 1)], ids, batches, reps=2, warmup=1)
    assert [r["entry"] for r in rows] == ["a", "b"]
    for row in rows:
        lat = row["latency"]
        assert lat["sentences"] == len(ids)
        assert lat["median_ms"] == pytest.approx(1000 * SLEEP, rel=0.10)
        # one call per batch: 3 sentences per SLEEP seconds
        assert row["throughput"]["sentences_per_s"] == pytest.approx(3 / SLEEP, rel=0.10)
        assert row["throughput"]["target_tokens"] == 6
    # warm-up (1 single + 1 batch) + 2 reps x (6 singles + 2 batches)
    assert stubs[0].calls == 2 + 2 * 8
    assert outputs["a"][4] == ["t4"]


def test_parse_entry_with_quoted_args():
    e = benchmark.parse_entry('name=cmlm_it10,path=/x/y.pt,args="--task nat_translation --decode-iterations 10",label=CMLM T=10')
    assert e.name == "cmlm_it10" and e.path == "/x/y.pt" and e.label == "CMLM T=10"
    assert e.args == ["--task", "nat_translation", "--decode-iterations", "10"]
    c = benchmark.parse_entry("name=c,backend=ctranslate2,source=ar,compute_type=int8")
    assert (c.backend, c.source, c.compute_type) == ("ctranslate2", "ar", "int8")
    with pytest.raises(benchmark.BenchmarkError):
        benchmark.parse_entry("name=x,bogus=1,path=p")
    with pytest.raises(benchmark.BenchmarkError):
        benchmark.parse_entry("name=x")  # no checkpoint


def test_spec_file(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"entries": [{"name": "a", "path": "a.pt", "args": "--task translation --beam 4"}]}))
    (entry,) = benchmark.load_spec(str(spec))
    assert entry.args == ["--task", "translation", "--beam", "4"]


def test_quickstart_entries_follow_models_sh(tmp_path):
    for name in ("ar", "cmlm"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "averaged.pt").write_bytes(b"")
    models_sh = os.path.join(benchmark.ROOT, "examples", "quickstart", "models.sh")
    entries = {e.name: e for e in benchmark.quickstart_entries(str(tmp_path), models_sh)}
    names, table = benchmark.read_models_sh(models_sh)
    assert set(entries) == {"ar_beam4", "ar_greedy", "cmlm"}  # models without a checkpoint are skipped
    assert entries["cmlm"].args == table["cmlm"][1]
    assert entries["ar_greedy"].args[-2:] == ["--beam", "1"]
    assert "cmlm" in names and names[0] == "ar"


def test_batches_respect_max_tokens():
    class Sizes:
        src_sizes = [3, 9, 4, 12, 5, 5, 2]

    batches = benchmark.make_batches(Sizes, list(range(7)), max_tokens=16)
    assert sorted(i for b in batches for i in b) == list(range(7))
    for b in batches:
        assert len(b) == 1 or len(b) * max(Sizes.src_sizes[i] for i in b) <= 16


def _synthetic_results():
    def entry(name, kind, backend, bleu, beam=None, ctype=None, source=None):
        return {"name": name, "label": name, "kind": kind, "backend": backend, "beam": beam, "compute_type": ctype,
                "source": source, "path": "x.pt", "args": None, "decoding": "d", "params": 1e6, "weights_mib": 4.0,
                "quality": {"bleu_tok": bleu, "sacrebleu": bleu, "chrf": 40.0, "sentences": 10, "length_ratio": 1.0}}

    def row(name, ms, sps):
        return {"entry": name, "config": "cpu-1t", "device": "cpu", "threads": 1, "compute_type": "float32",
                "latency": {"median_ms": ms, "p90_ms": ms * 1.5, "mean_ms": ms, "sentences": 10},
                "throughput": {"sentences": 10, "target_tokens": 100, "seconds_per_pass": [1.0],
                               "sentences_per_s": sps, "target_tokens_per_s": sps * 10},
                "peak_memory_mib": 1.0, "peak_memory_exact": True}

    return {
        "meta": {"date": "2026-11-21", "command": "python scripts/benchmarks/benchmark.py ...", "note": "test",
                 "machine": {"cpu": "cpu", "cores": 2, "memory_gib": 1, "os": "os", "gpu": None,
                             "load_average_start": [0.1]},
                 "versions": {"python": "3", "torch": "2", "fairseq": "0", "ctranslate2": "4", "nat_plugins": "0",
                              "sacrebleu": "2"},
                 "data": "d", "split": "test", "lang": "de",
                 "settings": {"reps": 1, "warmup": 1, "latency_sentences": 10, "throughput_sentences": 10,
                              "batches": 1, "max_tokens": 10, "seed": 1, "parity_tolerance": 0.3}},
        "entries": [entry("nat", "NAT", "fairseq", 20.0), entry("ar_g", "AR", "fairseq", 22.0, beam=1),
                    entry("ar_b4", "AR", "fairseq", 23.0, beam=4),
                    entry("ct2", "AR", "ctranslate2", 23.0, beam=4, ctype="int8", source="ar_b4")],
        "rows": [row("nat", 40.0, 100.0), row("ar_g", 30.0, 150.0), row("ar_b4", 20.0, 50.0), row("ct2", 4.0, 400.0)],
        "parity": [],
    }


def test_where_nat_loses_is_computed_from_the_numbers():
    results = _synthetic_results()
    comps = {c["reference"]: c for c in benchmark_report.comparisons(results)}
    assert set(comps) == {"ar_b4", "ct2"}  # beam-4 fairseq AR and its int8 conversion
    assert comps["ar_b4"]["latency_ratio"] == pytest.approx(2.0)
    assert comps["ar_b4"]["throughput_ratio"] == pytest.approx(2.0)
    assert comps["ct2"]["latency_ratio"] == pytest.approx(10.0)
    assert comps["ct2"]["throughput_ratio"] == pytest.approx(0.25)
    assert comps["ct2"]["bleu_delta"] == pytest.approx(-3.0)
    text = "\n".join(benchmark_report.losses_section(results))
    assert "2.00x slower" in text and "10.00x slower" in text and "2.00x faster" in text and "4.00x slower" in text


@pytest.mark.parametrize("start,end,contended", [
    (6.94, 8.61, True),   # other engineers' jobs for the whole run
    (2.63, 1.49, False),  # a training ended seconds before; the end is the benchmark's own 2 threads
    (1.0, 3.1, True),     # one other single-threaded job throughout
    (0.2, 2.0, False),    # quiet
])
def test_contention_needs_load_at_both_ends_beyond_own_threads(start, end, contended):
    meta = {"machine": {"cores": 2, "load_average_start": [start, 0, 0], "load_average_end": [end, 0, 0]},
            "settings": {"threads": [1, 2]}}
    assert bool(benchmark_report._contended(meta)) is contended


def test_report_files(tmp_path):
    paths = benchmark_report.write_all(_synthetic_results(), str(tmp_path))
    md = open(paths[0]).read()
    assert "| nat | NAT |" in md and "Where NAT loses" in md
    with open(paths[2], "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_no_entries_is_a_one_line_error(capsys, tiny_bin):
    assert benchmark.main([tiny_bin]) == 2
    assert "no entries" in capsys.readouterr().err


# --------------------------------------------------------------------------
# End to end on tiny checkpoints
# --------------------------------------------------------------------------


def _root_conftest():
    """tests/conftest.py's helpers (``import conftest`` here finds tests/scripts/conftest.py)."""
    import importlib.util

    path = os.path.join(benchmark.ROOT, "tests", "conftest.py")
    spec = importlib.util.spec_from_file_location("_nat_tests_root_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train_tiny(tiny_bin, save, arch, criterion, extra=()):
    helpers = _root_conftest()
    helpers.run_train(helpers.train_args(tiny_bin, save, arch=arch, criterion=criterion, max_update=20, extra=list(extra)))
    return os.path.join(save, "checkpoint_last.pt")


@pytest.fixture(scope="module")
def tiny_checkpoints(tiny_bin, tmp_path_factory):
    base = tmp_path_factory.mktemp("bench_ckpt")
    cmlm = _train_tiny(tiny_bin, str(base / "cmlm"), "cmlm_tiny", "cmlm_loss")
    ar = _train_tiny(tiny_bin, str(base / "ar"), "transformer", "label_smoothed_cross_entropy", extra=[
        "--task", "translation", "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "32",
        "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
        "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--share-all-embeddings"])
    return cmlm, ar


@pytest.fixture(scope="module")
def tiny_run(tiny_bin, tiny_checkpoints, tmp_path_factory):
    """One benchmark run on the tiny checkpoints: ``(exit status, results, output folder)``."""
    cmlm, ar = tiny_checkpoints
    base = tmp_path_factory.mktemp("bench_run")
    out = base / "bench"
    rc = benchmark.main([
        tiny_bin, "--device", "cpu", "--threads", "1", "--reps", "2", "--warmup", "1", "--latency-sentences", "4",
        "--max-tokens", "256", "--out", str(out), "--ct2-cache", str(base / "ct2"),
        "--entry", f'name=cmlm_it2,path={cmlm},args="--task nat_translation --decode-iterations 2 --length-beam 2"',
        "--entry", f'name=ar_beam4,path={ar},args="--task translation --beam 4 --max-len-a 1.2 --max-len-b 10"',
        "--entry", f'name=ar_greedy,path={ar},args="--task translation --beam 1 --max-len-a 1.2 --max-len-b 10"',
        # the exported fast path on TorchScript always runs; ONNX Runtime rows come with --fast-path auto
        "--entry", "name=ts_cmlm_it2,backend=torchscript,source=cmlm_it2",
    ])
    return rc, json.loads((out / "results.json").read_text()), out


def test_benchmark_runs_on_tiny_checkpoints(tiny_run):
    rc, results, out = tiny_run
    names = {e["name"] for e in results["entries"]}
    assert {"cmlm_it2", "ar_beam4", "ar_greedy"} <= names
    kinds = {e["name"]: e["kind"] for e in results["entries"]}
    assert kinds["cmlm_it2"] == "NAT" and kinds["ar_beam4"] == "AR"
    for row in results["rows"]:
        assert row["latency"]["sentences"] == 4 and row["latency"]["median_ms"] > 0
        assert row["throughput"]["sentences"] == 40 and row["throughput"]["sentences_per_s"] > 0
    for e in results["entries"]:
        assert e["quality"]["sentences"] == 40
    meta = results["meta"]
    assert meta["versions"]["torch"] and meta["versions"]["fairseq"] and "--entry" in meta["command"]
    md = (out / "RESULTS.md").read_text()
    assert "| cmlm_it2 | NAT |" in md and "Where NAT loses" in md
    assert (out / "results_bleu_speed.png").read_bytes()[:4] == b"\x89PNG"
    assert any(c["nat"] == "cmlm_it2" and c["reference"] == "ar_beam4" for c in results["comparisons"])
    if not [c for c in results["parity"] if c["enforced"] and not c["ok"]]:
        assert rc == 0


def test_exported_fast_path_rows(tiny_run):
    """Rows of the exported passes: identical hypotheses to the eager entry (enforced),
    compared with it in the report; ONNX Runtime rows when it is installed."""
    from nat_plugins.export import runtime

    rc, results, out = tiny_run
    entries = {e["name"]: e for e in results["entries"]}
    fast = ["ts_cmlm_it2"] + (["fast_cmlm_it2"] if "onnxruntime" in runtime.available_backends() else [])
    checks = {c["entry"]: c for c in results["parity"]}
    for name in fast:
        assert entries[name]["kind"] == "NAT" and entries[name]["source"] == "cmlm_it2"
        assert checks[name]["enforced"] and checks[name]["ok"], checks[name]
        assert checks[name]["identical_hypotheses"] == checks[name]["sentences"] == 40
        assert entries[name]["quality"]["bleu_tok"] == entries["cmlm_it2"]["quality"]["bleu_tok"]
        assert any(c["nat"] == name and c["reference"] == "cmlm_it2" and c["reference_kind"] == "eager NAT"
                   for c in results["comparisons"])
    assert {r["entry"] for r in results["rows"]} >= set(fast)
    if "fast_cmlm_it2" in fast:  # int8 (ours): reported, not enforced
        int8 = checks["fast_int8_cmlm_it2"]
        assert not int8["enforced"] and entries["fast_int8_cmlm_it2"]["compute_type"] == "int8"
    md = (out / "RESULTS.md").read_text()
    assert "| ts_cmlm_it2 | NAT | torchscript float32 |" in md
    assert "**ts_cmlm_it2** vs `cmlm_it2`" in md.split("## Exported fast path vs the eager generator")[1]


def test_fast_entries_need_onnxruntime_only_when_on(monkeypatch):
    from nat_plugins.export import runtime

    class NAT:
        backend, is_nat, name = "fairseq", True, "dat"
        entry = benchmark.Entry("dat", "x.pt")

        class model:
            decoding_family = "dat"

    class Sundae(NAT):
        name = "sundae"

        class model:
            decoding_family = "sundae"

    monkeypatch.setattr(runtime, "_have_onnxruntime", lambda: False)
    assert benchmark.add_fast_entries([], [NAT()], "auto", ("cmlm", "dat")) == []
    with pytest.raises(benchmark.BenchmarkError, match="make bench"):
        benchmark.add_fast_entries([], [NAT()], "on", ("cmlm", "dat"))
    monkeypatch.setattr(runtime, "_have_onnxruntime", lambda: True)
    added = benchmark.add_fast_entries([], [NAT(), Sundae()], "auto", ("cmlm", "dat"))
    assert [(e.name, e.backend, e.compute_type, e.source) for e in added] == [
        ("fast_dat", "onnxruntime", "float32", "dat"), ("fast_int8_dat", "onnxruntime", "int8", "dat")]
    assert benchmark.add_fast_entries([], [NAT()], "off", ("cmlm", "dat")) == []
    with pytest.raises(benchmark.BenchmarkError, match="source="):
        benchmark.parse_entry("name=x,backend=onnxruntime")
    with pytest.raises(benchmark.BenchmarkError, match="int8 needs backend=onnxruntime"):
        benchmark.parse_entry("name=x,backend=torchscript,source=dat,compute_type=int8")


def test_ctranslate2_converter_path(tiny_run):
    if benchmark.ct2.version() is None:
        pytest.skip("ctranslate2 not installed (make bench installs it)")
    rc, results, _ = tiny_run
    # int8 + float32 rows for both AR entries; the float32 conversion's parity is enforced
    checks = {c["entry"]: c for c in results["parity"] if c["entry"].startswith("ct2_")}  # (fast-path rows
    # join in when onnxruntime is installed too)
    assert set(checks) == {f"ct2_{t}_{n}" for t in ("int8", "float32") for n in ("ar_beam4", "ar_greedy")}
    greedy = checks["ct2_float32_ar_greedy"]
    assert greedy["enforced"] and greedy["ok"], greedy
    assert greedy["identical_hypotheses"] == greedy["sentences"]  # same weights, same greedy search
    assert rc == (0 if all(c["ok"] for c in checks.values() if c["enforced"]) else benchmark.PARITY_FAILED_EXIT)


def test_missing_ctranslate2_is_skipped_or_a_clear_error(monkeypatch):
    class AR:
        backend, is_nat, name = "fairseq", False, "ar"
        entry = benchmark.Entry("ar", "x.pt")

    monkeypatch.setattr(benchmark.ct2, "version", lambda: None)
    assert benchmark.add_ctranslate2_entries([], [AR()], "auto", [("cpu", 1)]) == []
    with pytest.raises(benchmark.BenchmarkError, match="pip install"):
        benchmark.add_ctranslate2_entries([], [AR()], "on", [("cpu", 1)])
    monkeypatch.setattr(benchmark.ct2, "version", lambda: "4.0")
    added = benchmark.add_ctranslate2_entries([], [AR()], "auto", [("cpu", 1), ("cuda", None)])
    assert sorted(e.compute_type for e in added) == ["float16", "float32", "int8"]
