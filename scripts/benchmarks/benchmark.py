#!/usr/bin/env python3
"""Speed and quality of NAT decoders against fairseq AR and CTranslate2 (issue 8).

One run loads every entry's model once, in-process, then measures every
entry on the same binarized test sentences, round-robin over entries for
several repetitions (so slow drifts of machine load hit every entry alike):

* BLEU (tokenized compound-split and sacreBLEU) and chrF, through the
  functions of ``scripts/evaluation/score.py``, with the same BPE removal and
  detokenization for every entry, done after the clock stops;
* **batch-1 latency**: each sentence of a fixed subset (``--latency-sentences``,
  identical for all entries) translated alone; a sentence's time is its
  median over repetitions, and the median and p90 over sentences are
  reported, after ``--warmup`` untimed translations;
* **large-batch throughput**: sentences/s and target tokens/s over batches
  of at most ``--max-tokens`` source tokens (the same batches for every
  entry); the median pass time over repetitions;
* **peak memory** added while decoding the throughput pass (RSS high-water
  mark on CPU, ``torch.cuda.max_memory_allocated`` on GPU).

CPU runs use fixed thread counts (``--threads 1,2``: ``torch.set_num_threads``
for fairseq, ``intra_threads`` for CTranslate2); ``--device auto`` adds the
GPU when one is present.

Entries are (checkpoint, decoding configuration) pairs: ``--entry``,
``--spec FILE`` (JSON/YAML list) or ``--quickstart-runs DIR`` (the models of
``examples/quickstart/models.sh`` whose ``DIR/<name>/averaged.pt`` exists,
each with its ``MODEL_<name>_GEN`` flags; the AR model twice, as listed
beam and greedy).  For every fairseq AR entry the same checkpoint is
converted to CTranslate2 and decoded with the same beam and length limits
(int8 and float32 on CPU, float16 on GPU); the float32 conversion must
reproduce fairseq's BLEU within ``--parity-tolerance`` (0.3) or the row is
marked FAILED and the exit status is 3.  For every fairseq CMLM/DAT/DiffGLAT entry
the same checkpoint and flags are decoded again on exported passes
(:mod:`nat_plugins.export`, ONNX Runtime float32 and int8; ``--fast-path``): the
float32 row must reproduce every hypothesis of the eager entry, or it is marked
FAILED as well.

Code: entries in ``benchmark_entries.py``, runners and scoring in
``benchmark_runners.py``, the clock and the round-robin in ``benchmark_timing.py``,
reports in ``benchmark_report.py``, CTranslate2 in ``benchmark_ctranslate2.py``.

Outputs in ``--out`` (default ``benchmarks/``): ``RESULTS.md`` (tables, the
parity check, and "where NAT loses, and by how much" computed from the
numbers), ``results.json`` and ``results_bleu_speed.png``.

Example::

    python scripts/benchmarks/benchmark.py data-bin/quickstart --raw-ref data/quickstart/raw/test.de \\
        --entry 'name=cmlm_it4,path=runs/quickstart/cmlm/averaged.pt,args="--task nat_translation --decode-iterations 4 --length-beam 3"' \\
        --entry 'name=ar_beam4,path=runs/quickstart/ar/averaged.pt,args="--task translation --beam 4 --max-len-a 1.2 --max-len-b 10"'
"""
import argparse
import datetime
import os
import platform
import re
import shlex
import sys

# This folder (benchmark_*.py), scripts/evaluation (score.py, read lazily by the runners) and the checkout.
SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(SCRIPTS)
for _path in (os.path.join(SCRIPTS, "benchmarks"), os.path.join(SCRIPTS, "evaluation"), ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import benchmark_ctranslate2 as ct2  # noqa: E402
import benchmark_report as report  # noqa: E402
import benchmark_timing as timing  # noqa: E402
from benchmark_entries import (  # noqa: E402,F401  (re-exported: the CLI's API, used by the tests)
    FAST_BACKENDS, BenchmarkError, Entry, add_ctranslate2_entries, add_fast_entries, load_spec, log, parse_entry,
    quickstart_entries, read_models_sh)
from benchmark_runners import (  # noqa: E402,F401
    CT2EntryRunner, FairseqRunner, FastRunner, choose_ids, make_batches, references, score_outputs)
from benchmark_timing import configurations, measure  # noqa: E402,F401

PARITY_FAILED_EXIT = 3



# --------------------------------------------------------------------------
# Quality and parity (outside every timed region)
# --------------------------------------------------------------------------


def parity_checks(entries_info, hyps, tolerance):
    """Converted and exported rows against the fairseq entry they come from.

    * CTranslate2: the float32 conversion is the conversion check (enforced): both
      BLEUs within ``tolerance``.  Quantized/half rows report their delta only.
    * Exported fast path (``onnxruntime``/``torchscript``): the same model and search
      on exported passes, so every float32 hypothesis must be identical (enforced);
      int8 rows report their delta only.
    """
    checks = []
    for info in entries_info.values():
        if info["backend"] == "fairseq" or info.get("source") not in entries_info:
            continue
        src = entries_info[info["source"]]
        same = sum(a == b for a, b in zip(hyps[info["name"]], hyps[src["name"]]))
        d_tok = info["quality"]["bleu_tok"] - src["quality"]["bleu_tok"]
        d_sacre = info["quality"]["sacrebleu"] - src["quality"]["sacrebleu"]
        if info["backend"] in FAST_BACKENDS and info["compute_type"] == "float32":
            enforced, ok, rule = True, same == len(hyps[src["name"]]), "identical hypotheses"
        elif info["backend"] in FAST_BACKENDS:  # int8: the quantization's effect, reported only
            enforced, ok, rule = False, abs(d_tok) <= tolerance + 1e-9, f"|BLEU delta| <= {tolerance}"
        else:
            enforced = info["compute_type"] == "float32"
            ok = abs(d_tok) <= tolerance + 1e-9 and abs(d_sacre) <= tolerance + 1e-9
            rule = f"|BLEU delta| <= {tolerance}"
        check = {
            "entry": info["name"], "against": src["name"], "backend": info["backend"],
            "compute_type": info["compute_type"], "bleu_tok_delta": round(d_tok, 2),
            "sacrebleu_delta": round(d_sacre, 2), "identical_hypotheses": same, "sentences": len(hyps[src["name"]]),
            "tolerance": tolerance, "rule": rule, "enforced": enforced, "ok": ok,
        }
        info["parity"] = check
        checks.append(check)
    return checks


# --------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def machine_info():
    import torch

    cpu = re.search(r"^model name\s*:\s*(.*)$", _read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+)", _read("/proc/meminfo"), re.M)
    info = {
        "cpu": cpu.group(1).strip() if cpu else platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "os": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        info["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def versions():
    from importlib import metadata

    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "ctranslate2": ct2.version()}
    for name, dist in (("fairseq", "fairseq-fixed"), ("nat_plugins", "nat_plugins"), ("sacrebleu", "sacrebleu"),
                       ("numpy", "numpy")):
        try:
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out["fairseq"] is None:
        import fairseq

        out["fairseq"] = getattr(fairseq, "__version__", None)
    return out


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="benchmark.py",
        description=__doc__.split("\n\n")[0] + ": batch-1 latency, large-batch throughput, memory, BLEU/chrF.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", help="binarized data directory (fairseq-preprocess output)")
    parser.add_argument("--split", default="test", help="split to translate (default: test)")
    parser.add_argument("--entry", action="append", default=[], metavar="SPEC",
                        help='name=NAME,path=CKPT,args="FAIRSEQ GENERATION FLAGS"[,label=TEXT] '
                             "(or backend=ctranslate2,source=ENTRY,compute_type=int8); repeatable")
    parser.add_argument("--spec", help="JSON/YAML file with a list of entries (same keys as --entry)")
    parser.add_argument("--quickstart-runs", metavar="DIR",
                        help="add the quickstart models that have DIR/<name>/averaged.pt (e.g. runs/quickstart)")
    parser.add_argument("--models-sh", default=os.path.join(ROOT, "examples", "quickstart", "models.sh"),
                        help="the quickstart models table (GEN flags per model)")
    parser.add_argument("--raw-ref", help="untokenized reference of the split, for sacreBLEU and chrF")
    parser.add_argument("--lang", help="target language for Moses detokenization (default: the task's target)")
    parser.add_argument("--latency-sentences", type=int, default=200,
                        help="sentences in the batch-1 latency subset (default 200; 0 = all)")
    parser.add_argument("--throughput-sentences", type=int, default=0,
                        help="sentences in the throughput/quality set (default 0 = the whole split)")
    parser.add_argument("--max-tokens", type=int, default=4096, help="source tokens per throughput batch (4096)")
    parser.add_argument("--max-sentences", type=int, help="optional cap on sentences per throughput batch")
    parser.add_argument("--reps", type=int, default=3, help="round-robin repetitions, medians reported (3)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed batch-1 translations per entry first (10)")
    parser.add_argument("--threads", default="1,2", help="CPU thread counts, comma-separated (1,2)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                        help="cpu, cuda, or auto = cpu plus the GPU when present (auto)")
    parser.add_argument("--fp16", action="store_true", help="run fairseq models in float16 on GPU")
    parser.add_argument("--ctranslate2", choices=("auto", "on", "off"), default="auto",
                        help="CTranslate2 rows for every fairseq AR entry: auto = when installed; "
                             "on = fail if not installed (auto)")
    parser.add_argument("--ct2-cache", default=os.path.join(ROOT, "runs", "benchmark", "ctranslate2"),
                        help="where converted CTranslate2 models are kept")
    parser.add_argument("--fast-path", choices=("auto", "on", "off"), default="auto",
                        help="exported fast-path rows (ONNX Runtime float32 and int8) for every fairseq "
                             "CMLM/DAT/DiffGLAT entry: "
                             "auto = when onnxruntime is installed; on = fail if not installed (auto)")
    parser.add_argument("--parity-tolerance", type=float, default=0.3,
                        help="max BLEU difference of the float32 CTranslate2 conversion vs fairseq (0.3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the latency/throughput subsets (1)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks"),
                        help="output folder for RESULTS.md, results.json, results_bleu_speed.png")
    parser.add_argument("--note", help="a remark recorded in the report (e.g. 'machine shared with training jobs')")
    args = parser.parse_args(argv)
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        parser.error(f"--threads must be comma-separated integers, got {args.threads!r}")
    if not args.threads or min(args.threads) < 1:
        parser.error("--threads needs at least one count >= 1")
    if args.reps < 1 or args.warmup < 0 or args.max_tokens < 1:
        parser.error("--reps and --max-tokens must be >= 1, --warmup >= 0")
    return args


def collect_entries(args):
    entries = []
    if args.quickstart_runs:
        entries += quickstart_entries(args.quickstart_runs, args.models_sh)
    if args.spec:
        entries += load_spec(args.spec)
    entries += [parse_entry(text) for text in args.entry]
    if not entries:
        raise BenchmarkError("no entries: give --entry, --spec or --quickstart-runs")
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BenchmarkError(f"duplicate entry names {dupes}")
    for e in entries:
        if e.backend == "fairseq" and not os.path.isfile(e.path):
            raise BenchmarkError(f"entry {e.name}: checkpoint {e.path} does not exist")
    return entries


def run(args, argv_for_record):
    import nat_plugins  # noqa: F401  (compat shims + registration before any checkpoint is read)

    entries = collect_entries(args)
    configs = configurations(args.device, args.threads)
    model_cache, runners = {}, []
    for e in entries:
        if e.backend == "fairseq":
            runners.append(FairseqRunner(e, args.data, args.split, model_cache, fp16=args.fp16))
    by_name = {r.name: r for r in runners}
    ct2_entries = [e for e in entries if e.backend == "ctranslate2"]
    ct2_entries += add_ctranslate2_entries(entries, runners, args.ctranslate2, configs)
    if ct2_entries and ct2.version() is None:
        raise BenchmarkError(ct2.INSTALL_HINT)
    user_dir = os.path.dirname(nat_plugins.__file__)
    for e in ct2_entries:
        src = by_name.get(e.source)
        if src is None or src.is_nat:
            raise BenchmarkError(f"entry {e.name}: source {e.source!r} is not a fairseq AR entry")
        model_dir = ct2.convert(src.entry.path, args.data, args.ct2_cache, user_dir=user_dir, log=log)
        runners.append(CT2EntryRunner(e, src, model_dir))
    from nat_plugins.export.passes import FAMILIES

    fast_entries = [e for e in entries if e.backend in FAST_BACKENDS]
    fast_entries += add_fast_entries(entries, runners, args.fast_path, FAMILIES)
    for e in fast_entries:
        src = by_name.get(e.source)
        if src is None or not src.is_nat:
            raise BenchmarkError(f"entry {e.name}: source {e.source!r} is not a fairseq NAT entry")
        log(f"exporting the passes of {e.source} for {e.backend}")
        runners.append(FastRunner(e, src))

    sizes = {len(r.dataset) for r in runners}
    if len(sizes) != 1:
        raise BenchmarkError(f"entries see different {args.split} splits (sizes {sorted(sizes)})")
    total = sizes.pop()
    first = runners[0]
    latency_ids = choose_ids(total, args.latency_sentences, args.seed)
    quality_ids = choose_ids(total, args.throughput_sentences, args.seed)
    batches = make_batches(first.dataset, quality_ids, args.max_tokens, args.max_sentences)
    raw_refs = None
    if args.raw_ref:
        import score

        lines = score.read_lines(args.raw_ref)
        if len(lines) != total:
            raise BenchmarkError(f"--raw-ref has {len(lines)} lines but split {args.split} has {total} sentences")
        raw_refs = [lines[i] for i in quality_ids]
    lang = args.lang or getattr(first.task.cfg, "target_lang", None) or "de"
    refs = references(first, quality_ids)

    log(f"{len(runners)} entries x {len(configs)} configurations x {args.reps} repetitions; "
        f"latency on {len(latency_ids)} sentences, throughput on {len(quality_ids)} in {len(batches)} batches")
    machine = machine_info()
    rows, outputs, signatures = measure(runners, configs, latency_ids, batches, args.reps, args.warmup)
    try:
        machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass

    entries_info, hyps = {}, {}
    for r in list(runners):
        if r.name not in outputs:
            log(f"entry {r.name}: no measured configuration runs it (it needs device {r.device}); left out")
            runners.remove(r)
            continue
        quality, hyps[r.name] = score_outputs(r, outputs[r.name], quality_ids, refs, raw_refs, lang)
        sig = signatures.get(r.name, {})
        entries_info[r.name] = {
            "name": r.name, "label": r.entry.describe(), "kind": r.kind, "backend": r.backend,
            "compute_type": r.compute_type if r.backend != "fairseq" else None,
            "source": r.entry.source, "path": r.entry.path or r.source.entry.path,
            "args": shlex.join(r.entry.args) if r.entry.args else None,
            "decoding": r.describe_decoding(), "beam": r.beam, "params": r.params, "weights_mib": round(r.weights_mib, 2),
            "quality": dict({k: quality[k] for k in ("bleu_tok", "sacrebleu", "chrf", "sentences")},
                            length_ratio=round(quality["bleu_tok_detail"]["hyp_len"]
                                               / max(1, quality["bleu_tok_detail"]["ref_len"]), 3)),
            "outputs_identical_across_configs": len(set(sig.values())) <= 1,
        }
    checks = parity_checks(entries_info, hyps, args.parity_tolerance)
    for c in checks:
        status = "ok" if c["ok"] else ("FAILED" if c["enforced"] else "outside tolerance (quantization, not enforced)")
        line = (f"parity {c['entry']} vs {c['against']}: BLEU(tok) {c['bleu_tok_delta']:+.2f}, "
                f"sacreBLEU {c['sacrebleu_delta']:+.2f}, identical hypotheses {c['identical_hypotheses']}/"
                f"{c['sentences']} -> {status}")
        log(line if c["ok"] or not c["enforced"] else "!" * 8 + " " + line + " " + "!" * 8)

    results = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": argv_for_record,
            "machine": machine,
            "versions": versions(),
            "note": args.note,
            "data": args.data, "split": args.split, "lang": lang,
            "settings": {
                "reps": args.reps, "warmup": args.warmup, "latency_sentences": len(latency_ids),
                "throughput_sentences": len(quality_ids), "batches": len(batches), "max_tokens": args.max_tokens,
                "max_sentences": args.max_sentences, "threads": args.threads, "device": args.device,
                "fp16": args.fp16, "seed": args.seed, "parity_tolerance": args.parity_tolerance,
            },
        },
        "entries": list(entries_info.values()),
        "rows": rows,
        "parity": checks,
    }
    results["comparisons"] = report.comparisons(results)
    paths = report.write_all(results, args.out)
    for p in paths:
        log(f"wrote {p}")
    print(report.markdown_table(results))
    failed = [c for c in checks if c["enforced"] and not c["ok"]]
    if failed:
        log(f"parity FAILED for {', '.join(c['entry'] + ' (' + c['rule'] + ')' for c in failed)}; "
            "rows are marked FAILED in the report")
        return PARITY_FAILED_EXIT
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    record = "python scripts/benchmarks/benchmark.py " + shlex.join(argv)
    try:
        from nat_plugins.errors import NATUserError
    except ImportError:  # pragma: no cover - fairseq missing: run() fails clearly anyway
        NATUserError = BenchmarkError
    try:
        return run(args, record)
    except (BenchmarkError, NATUserError) as error:
        print(f"benchmark.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
