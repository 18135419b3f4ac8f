"""Timing and memory primitives of ``scripts/benchmarks/benchmark.py``.

Kept free of fairseq so the tests can check the clock on a stub model
(a runner that sleeps a known time) through exactly the code that times
the real ones.

A *runner* is anything with ``run(prepared_batch) -> outputs``; the
benchmark prepares every batch (tensors, token lists) before the clock
starts and turns outputs into text after it stops, so only translation
itself is timed (issue 8, "time and tokens are measured fairly").
"""
import hashlib
import math
import time

from benchmark_entries import BenchmarkError, log

__all__ = [
    "configurations",
    "config_key",
    "measure",
    "percentile",
    "median",
    "time_call",
    "measure_latency",
    "measure_throughput",
    "summarize_latency",
    "PeakMemory",
    "read_proc_status_kib",
]


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------


def percentile(values, q):
    """The ``q``-th percentile (0-100) with linear interpolation between
    closest ranks (NumPy's default ``linear`` method)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def median(values):
    return percentile(values, 50)


def summarize_latency(per_sentence_reps):
    """Batch-1 latency summary in milliseconds.

    ``per_sentence_reps``: one list per sentence of its seconds in each
    repetition.  Each sentence's time is the median over repetitions (so a
    burst of load during one repetition does not count), then the median
    and 90th percentile over sentences are reported.
    """
    per_sentence = [median(reps) for reps in per_sentence_reps if reps]
    if not per_sentence:
        return {"median_ms": None, "p90_ms": None, "mean_ms": None, "sentences": 0}
    return {
        "median_ms": 1000.0 * median(per_sentence),
        "p90_ms": 1000.0 * percentile(per_sentence, 90),
        "mean_ms": 1000.0 * sum(per_sentence) / len(per_sentence),
        "sentences": len(per_sentence),
    }


# --------------------------------------------------------------------------
# Clock
# --------------------------------------------------------------------------


def time_call(fn, arg, sync=None):
    """``(fn(arg), seconds)``; ``sync`` (e.g. ``torch.cuda.synchronize``)
    runs before both clock reads so queued GPU work is inside the interval."""
    if sync is not None:
        sync()
    start = time.perf_counter()
    out = fn(arg)
    if sync is not None:
        sync()
    return out, time.perf_counter() - start


def measure_latency(runner, prepared_singles, sync=None):
    """Translate each prepared one-sentence batch on its own; returns
    ``(seconds per sentence, outputs)`` in input order."""
    seconds, outputs = [], []
    for batch in prepared_singles:
        out, sec = time_call(runner.run, batch, sync)
        seconds.append(sec)
        outputs.append(out)
    return seconds, outputs


def measure_throughput(runner, prepared_batches, sync=None):
    """Translate every prepared batch back to back; returns
    ``(total seconds, outputs per batch)``.  The clock covers the whole
    pass, Python overhead between batches included, as a user's loop would."""
    if sync is not None:
        sync()
    start = time.perf_counter()
    outputs = [runner.run(batch) for batch in prepared_batches]
    if sync is not None:
        sync()
    return time.perf_counter() - start, outputs


# --------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------


def read_proc_status_kib(fields=("VmRSS", "VmHWM")):
    """``{field: KiB}`` from ``/proc/self/status`` (Linux); ``{}`` elsewhere."""
    out = {}
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in fields:
                    out[key] = int(value.split()[0])
    except OSError:
        return {}
    return out


def _release_free_heap():
    """Give memory freed by earlier work back to the OS (glibc
    ``malloc_trim``), so the next high-water mark measures this pass's own
    allocations rather than reusing what an earlier entry left behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_rss_high_water():
    """Reset VmHWM to the current RSS (``echo 5 > /proc/self/clear_refs``,
    Linux >= 4.0).  Returns False where that is not allowed."""
    _release_free_heap()
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory *added* while the ``with`` block runs, in MiB.

    CPU: the process's resident-set high-water mark (``VmHWM``) minus the
    resident set at entry, after resetting the mark; where the reset is not
    permitted the mark since process start is used and ``exact`` is False
    (then the number is an upper bound polluted by earlier work).
    CUDA: ``torch.cuda.max_memory_allocated`` minus the allocation at entry
    (PyTorch's allocator only: CTranslate2's own GPU allocations are not
    visible there and are reported as ``None``).
    """

    def __init__(self, device="cpu", torch_visible=True):
        self.device = device
        self.torch_visible = torch_visible
        self.mib = None
        self.exact = True

    def __enter__(self):
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self.exact = _reset_rss_high_water()
            self._base = read_proc_status_kib().get("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            if self.torch_visible:
                self.mib = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        else:
            peak = read_proc_status_kib().get("VmHWM")
            if peak is not None and self._base is not None:
                self.mib = max(0, peak - self._base) / 1024.0
        return False


# --------------------------------------------------------------------------
# The round-robin measurement of every runner
# --------------------------------------------------------------------------


def configurations(device, threads):
    import torch

    configs = []
    if device in ("cpu", "auto"):
        configs += [("cpu", t) for t in threads]
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise BenchmarkError("--device cuda but torch sees no GPU")
        configs.append(("cuda", None))
    return configs


def config_key(device, threads):
    return f"{device}" if threads is None else f"{device}-{threads}t"


def measure(runners, configs, latency_ids, batches, reps, warmup):
    """Round-robin measurement.  Returns ``(rows, outputs)``: one row per
    (runner, configuration), and per runner the outputs of its first
    throughput pass (id -> output), for scoring."""
    import torch

    rows, first_outputs, signatures = [], {}, {}
    for device, threads in configs:
        key = config_key(device, threads)
        if device == "cpu":
            torch.set_num_threads(threads)
        active = [r for r in runners if r.supports(device)]
        if not active:
            continue
        log(f"[{key}] preparing {len(active)} entries")
        prepared = {}
        for r in active:
            r.activate(device, threads)
            prepared[r.name] = ([r.prepare([i]) for i in latency_ids], [r.prepare(b) for b in batches])
        # Warm-up (untimed): first calls allocate buffers and pick kernels.
        for r in active:
            singles, full = prepared[r.name]
            for p in singles[:warmup]:
                r.run(p)
            if full:
                r.run(full[0])
        lat = {r.name: [[] for _ in latency_ids] for r in active}
        passes = {r.name: [] for r in active}
        mem = {r.name: [] for r in active}
        tokens = {}
        for rep in range(reps):
            # rotate the order so no entry always runs first after another's pass
            order = active[rep % len(active):] + active[: rep % len(active)]
            for r in order:
                singles, full = prepared[r.name]
                secs, _ = measure_latency(r, singles, r.sync())
                for j, s in enumerate(secs):
                    lat[r.name][j].append(s)
                with PeakMemory(device, torch_visible=r.backend == "fairseq") as peak:
                    total, outs = measure_throughput(r, full, r.sync())
                passes[r.name].append(total)
                mem[r.name].append((peak.mib, peak.exact))
                if rep == 0:
                    by_id = {i: out for b, o in zip(batches, outs) for i, out in zip(b, o)}
                    tokens[r.name] = sum(len(r.tokens(o)) for o in by_id.values())
                    first_outputs.setdefault(r.name, by_id)
                    digest = hashlib.sha1(repr(sorted(by_id.items())).encode()).hexdigest()
                    signatures.setdefault(r.name, {})[key] = digest
            log(f"[{key}] repetition {rep + 1}/{reps} done")
        for r in active:
            seconds = median(passes[r.name])
            n = sum(len(b) for b in batches)
            peaks = [m for m, _ in mem[r.name] if m is not None]
            rows.append({
                "entry": r.name,
                "config": key,
                "device": device,
                "threads": threads,
                "compute_type": r.compute_type,
                "latency": summarize_latency(lat[r.name]),
                "throughput": {
                    "sentences": n,
                    "target_tokens": tokens[r.name],
                    "seconds_per_pass": [round(s, 4) for s in passes[r.name]],
                    "sentences_per_s": n / seconds if seconds else None,
                    "target_tokens_per_s": tokens[r.name] / seconds if seconds else None,
                },
                "peak_memory_mib": max(peaks) if peaks else None,
                "peak_memory_exact": all(e for _, e in mem[r.name]),
            })
            r.deactivate()
    return rows, first_outputs, signatures
