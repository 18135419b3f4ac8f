#!/usr/bin/env python
"""Benchmark the DAG ops of nat_plugins.ops (DA-Transformer loss, best alignment, joint-Viterbi).

CPU (one thread, B=32, T=30, P=240, random normalised links):
  * likelihood forward+backward: time and extra memory, against a naive
    "autograd through logsumexp" likelihood (the reference toolkit's approach);
  * best alignment; joint-Viterbi with max_length = P_b.
Memory is measured two ways: the peak-RSS increase of a fresh process around one
forward+backward (glibc forced to mmap every block >= 64 KiB, so freed tensors
leave RSS at once; /proc/self/clear_refs resets the peak), and the bytes autograd
saves for backward (saved_tensors_hooks).
GPU (when torch.cuda.is_available()): CUDA-vs-reference parity, joint-Viterbi
throughput at P=256 (batch 256) and batch-1 speed-up over the reference
toolkit's Python-loop algorithm (written here, ``python_loop_viterbi``), and the
likelihood's peak memory against
inputs + grads + 2*B*T*P floats (torch.cuda.max_memory_allocated).

Writes Markdown + JSON (+ PNG when matplotlib is present); see --help.
Imports torch and nat_plugins.ops only (not fairseq).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

from nat_plugins.ops import dag_best_alignment, dag_log_likelihood, dag_viterbi  # noqa: E402

CPU_GOALS = {"loss_fwd_bwd_s": 0.30, "loss_extra_mem_mb": 40.0, "best_alignment_s": 0.13, "joint_viterbi_s": 0.27}


# --------------------------------------------------------------------------- inputs
def make_inputs(B, T, P, device="cpu", seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    upper = torch.ones(P, P, dtype=torch.bool).triu(1)
    links = torch.randn(B, P, P, generator=g).masked_fill(~upper, float("-inf")).log_softmax(-1)
    links = links.masked_fill(~upper, float("-inf"))
    links[:, P - 1] = float("-inf")  # last vertex: no successor (log_softmax of all -inf is NaN)
    match = torch.randn(B, T, P, generator=g).log_softmax(-1)  # stands in for gathered token log-probs
    P_len = torch.full((B,), P, dtype=torch.long)
    T_len = torch.full((B,), T, dtype=torch.long)
    return (match.to(device, dtype), links.to(device, dtype), P_len.to(device), T_len.to(device))


def naive_log_likelihood(match, links, P_len, T_len):
    """Autograd through logsumexp: keeps a [B, P, P] tensor per step for backward."""
    B, T, P = match.shape
    alpha = torch.full((B, P), float("-inf"), dtype=match.dtype, device=match.device)
    alpha = torch.cat([match[:, 0, :1], alpha[:, 1:]], dim=1)
    steps = [alpha]
    for t in range(1, T):
        alpha = torch.logsumexp(alpha.unsqueeze(2) + links, dim=1) + match[:, t]
        steps.append(alpha)
    alphas = torch.stack(steps, dim=1)
    return alphas[torch.arange(B, device=match.device), T_len - 1, P_len - 1]


def python_loop_viterbi(links, tok, P_len, beta):
    """Baseline: the DA-Transformer reference toolkit's joint-Viterbi algorithm, written here.

    As REFERENCE.md describes it: a Python loop of max-plus steps over the full
    [B, P, P] tensor (no band or triangle skipped), the best raw score of every
    path length at each sentence's last vertex, division by the number of
    transitions to the power beta, and a per-sentence Python backtrace on the
    host.  Same objective as ``dag_viterbi(..., length_norm="transitions")``.
    """
    B, P, _ = links.shape
    delta = torch.full((B, P), float("-inf"), device=links.device)
    delta[:, 0] = tok[:, 0]
    rows = torch.arange(B, device=links.device)
    bps, ends = [], [delta[rows, P_len - 1]]
    for _ in range(1, P):
        delta, bp = (delta.unsqueeze(2) + links).max(dim=1)
        delta = delta + tok
        bps.append(bp)
        ends.append(delta[rows, P_len - 1])
    n = torch.arange(P, device=links.device, dtype=torch.float32).clamp(min=1)  # transitions of a k+1-vertex path
    best_k = (torch.stack(ends, 1) / n.pow(beta)).argmax(1)
    out = []
    for b in range(B):  # per-sentence host backtrace, as in the reference toolkit
        k, v, path = int(best_k[b]), int(P_len[b]) - 1, []
        while k >= 0:
            path.append(v)
            if k > 0:
                v = int(bps[k - 1][b, v])
            k -= 1
        out.append(path[::-1])
    return out


# --------------------------------------------------------------------------- timing
def timeit(fn, repeats, sync=None):
    fn()  # warm-up (allocator, MKL/cuBLAS init, CUDA build)
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def loss_fwd_bwd(fn, match, links, P_len, T_len, **kw):
    def run():
        m = match.detach().requires_grad_()
        l = links.detach().requires_grad_()
        y = fn(m, l, P_len, T_len, **kw)
        y.sum().backward()
        return y
    return run


# --------------------------------------------------------------------------- memory probe (child process)
def _rss_kb():
    vals = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                vals[k] = int(v.split()[0])
    return vals["VmRSS"], vals["VmHWM"]


def memory_probe(which, B, T, P):
    torch.set_num_threads(1)
    match, links, P_len, T_len = make_inputs(B, T, P)
    fn = (lambda m, l, p, t: dag_log_likelihood(m, l, p, t, impl="torch")) if which == "ours" else naive_log_likelihood
    loss_fwd_bwd(fn, match, links, P_len, T_len)()  # warm-up: one-off library buffers
    saved = []
    m = match.detach().requires_grad_()
    l = links.detach().requires_grad_()
    inputs = {m.data_ptr(), l.data_ptr()}

    def pack(t):
        if t.data_ptr() not in inputs:  # references to the inputs cost nothing extra
            saved.append(t.numel() * t.element_size())
        return t

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    rss0, _ = _rss_kb()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(m, l, P_len, T_len)
    y.sum().backward()
    _, hwm = _rss_kb()
    grads = m.grad.numel() * m.grad.element_size() + l.grad.numel() * l.grad.element_size()
    print(json.dumps({"peak_rss_delta_mb": (hwm - rss0) / 1024, "saved_for_backward_mb": sum(saved) / 2**20,
                      "grads_mb": grads / 2**20}))


def measure_memory(which, B, T, P):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    cmd = [sys.executable, os.path.abspath(__file__), "--_memory-probe", which, "--B", str(B), "--T", str(T), "--P", str(P)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# --------------------------------------------------------------------------- benches
def bench_cpu(args):
    torch.set_num_threads(1)
    B, T, P = args.B, args.T, args.P
    match, links, P_len, T_len = make_inputs(B, T, P)
    res = {"B": B, "T": T, "P": P, "threads": 1, "repeats": args.repeats}
    ours = lambda m, l, p, t: dag_log_likelihood(m, l, p, t, impl="torch")  # noqa: E731
    res["loss_fwd_s"], _ = timeit(lambda: dag_log_likelihood(match, links, P_len, T_len, impl="torch"), args.repeats)
    res["loss_fwd_bwd_s"], res["loss_fwd_bwd_all_s"] = timeit(loss_fwd_bwd(ours, match, links, P_len, T_len), args.repeats)
    res["naive_loss_fwd_bwd_s"], _ = timeit(loss_fwd_bwd(naive_log_likelihood, match, links, P_len, T_len),
                                            max(3, args.repeats // 2))
    res["best_alignment_s"], _ = timeit(lambda: dag_best_alignment(match, links, P_len, T_len, impl="torch"), args.repeats)
    res["joint_viterbi_s"], _ = timeit(lambda: dag_viterbi(links, match[:, 0], P_len, beta=1.0, impl="torch"), args.repeats)
    mem = measure_memory("ours", B, T, P)
    naive_mem = measure_memory("naive", B, T, P)
    res["loss_extra_mem_mb"] = mem["peak_rss_delta_mb"]
    res["loss_saved_for_backward_mb"] = mem["saved_for_backward_mb"]
    res["grads_mb"] = mem["grads_mb"]
    res["naive_loss_extra_mem_mb"] = naive_mem["peak_rss_delta_mb"]
    res["naive_loss_saved_for_backward_mb"] = naive_mem["saved_for_backward_mb"]
    res["speedup_vs_naive"] = res["naive_loss_fwd_bwd_s"] / res["loss_fwd_bwd_s"]
    res["memory_ratio_naive_over_ours"] = res["naive_loss_extra_mem_mb"] / max(res["loss_extra_mem_mb"], 1e-9)
    # Agreement with the naive likelihood on these inputs (same run).
    a = dag_log_likelihood(match.double(), links.double(), P_len, T_len, impl="torch")
    b = naive_log_likelihood(match.double(), links.double(), P_len, T_len)
    res["max_rel_diff_vs_naive_fp64"] = float(((a - b).abs() / b.abs()).max())
    res["goals"] = {k: {"goal": g, "value": res[k], "met": res[k] <= g} for k, g in CPU_GOALS.items()}
    return res


def rel_err(a, b):
    a, b = a.double(), b.double()
    fin = torch.isfinite(b)
    if not torch.equal(torch.isfinite(a), fin):
        return float("inf")
    return float(((a[fin] - b[fin]).abs() / b[fin].abs().clamp_min(1e-6)).max()) if fin.any() else 0.0


def bench_gpu(args):
    """The GPU checks.  --gpu-dry-run runs the same code on the CPU with the PyTorch
    reference standing in for the kernels and tiny sizes (scripts/gpu/gpu_check.sh --dry-run)."""
    dry = args.gpu_dry_run
    dev, kimpl = ("cpu", "torch") if dry else ("cuda", "cuda")
    sync = None if dry else torch.cuda.synchronize
    res = {"device_name": "cpu (dry run: reference ops, tiny sizes)" if dry else torch.cuda.get_device_name(0),
           "torch_cuda": torch.version.cuda}
    B, T, P = (3, 5, 12) if dry else (8, 30, 240)
    match, links, P_len, T_len = make_inputs(B, T, P, device=dev)
    P_len[1::2] = P - (3 if dry else 37)
    T_len[1::3] = T - (2 if dry else 11)
    grads = {}
    for impl in ("torch", kimpl):
        m = match.detach().requires_grad_()
        l = links.detach().requires_grad_()
        y = dag_log_likelihood(m, l, P_len, T_len, impl=impl)
        y.sum().backward()
        grads[impl] = (y.detach(), m.grad, l.grad)
    par = {
        "loss_rel_err": rel_err(grads[kimpl][0], grads["torch"][0]),
        "grad_match_max_abs_err": float((grads[kimpl][1] - grads["torch"][1]).abs().max()),
        "grad_links_max_abs_err": float((grads[kimpl][2] - grads["torch"][2]).abs().max()),
        "alignment_equal": bool(torch.equal(dag_best_alignment(match, links, P_len, T_len, impl=kimpl),
                                            dag_best_alignment(match, links, P_len, T_len, impl="torch"))),
    }
    tok = match[:, 0]
    vc = dag_viterbi(links, tok, P_len, impl=kimpl, length_norm="transitions")
    vt = dag_viterbi(links, tok, P_len, impl="torch", length_norm="transitions")
    par["viterbi_paths_equal"] = bool(torch.equal(vc[0], vt[0]) and torch.equal(vc[1], vt[1]))
    par["viterbi_score_rel_err"] = rel_err(vc[2], vt[2])
    par["met"] = (par["loss_rel_err"] <= 1e-4 and par["alignment_equal"] and par["viterbi_paths_equal"]
                  and par["viterbi_score_rel_err"] <= 1e-4)
    res["parity_fp32"] = par

    # Joint-Viterbi throughput, P = 256, batch 256.
    Bv, Pv = (4, 16) if dry else (256, 256)
    _, lv, Plv, _ = make_inputs(Bv, 2, Pv, device=dev, seed=1)
    tv = torch.randn(Bv, Pv, device=dev).log_softmax(-1)
    t, _ = timeit(lambda: dag_viterbi(lv, tv, Plv, impl=kimpl, length_norm="transitions"), args.repeats, sync)
    res["viterbi_b256_p256_s"] = t
    res["viterbi_sentences_per_s"] = Bv / t
    # Batch 1 against the reference toolkit's Python-loop algorithm on the same GPU.
    l1, t1, p1 = lv[:1].contiguous(), tv[:1].contiguous(), Plv[:1]
    tc, _ = timeit(lambda: dag_viterbi(l1, t1, p1, impl=kimpl, length_norm="transitions"), args.repeats, sync)
    tp, _ = timeit(lambda: python_loop_viterbi(l1, t1, p1, 1.0), max(3, args.repeats // 2), sync)
    ours = dag_viterbi(l1, t1, p1, impl=kimpl, length_norm="transitions")
    res["viterbi_b1_same_path_as_baseline"] = ours[0][0, : int(ours[1][0])].tolist() == \
        python_loop_viterbi(l1, t1, p1, 1.0)[0]
    res["viterbi_b1_cuda_s"], res["viterbi_b1_python_loop_s"] = tc, tp
    res["viterbi_b1_speedup"] = tp / tc
    res["viterbi_goals_met"] = res["viterbi_sentences_per_s"] >= 10000 and res["viterbi_b1_speedup"] >= 20

    # Likelihood memory: peak <= inputs + grads + 2*B*T*P floats.
    Bm, Tm, Pm = (4, 5, 16) if dry else (32, 30, 240)
    mm, lm, Pl, Tl = make_inputs(Bm, Tm, Pm, device=dev, seed=2)
    m = mm.detach().requires_grad_()
    l = lm.detach().requires_grad_()
    if dry:  # no device allocator to measure on the CPU
        res["loss_gpu_peak_mb"] = res["loss_gpu_bound_mb"] = 0.0
        res["loss_gpu_memory_met"] = None
    else:
        dag_log_likelihood(m, l, Pl, Tl, impl=kimpl).sum().backward()  # build + warm-up
        m.grad = l.grad = None
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        dag_log_likelihood(m, l, Pl, Tl, impl=kimpl).sum().backward()
        sync()
        peak = torch.cuda.max_memory_allocated()
        inputs = mm.numel() * 4 + lm.numel() * 4
        # base already holds the inputs; grads = inputs in size.  64 KiB of slack for the per-sentence
        # scalars (log Z, its gradient, a [B] double buffer) and the allocator's 512-byte rounding.
        bound = base + inputs + 2 * Bm * Tm * Pm * 4 + 64 * 1024
        res["loss_gpu_peak_mb"] = (peak - base) / 2**20
        res["loss_gpu_bound_mb"] = (bound - base) / 2**20
        res["loss_gpu_memory_met"] = peak <= bound
    t, _ = timeit(loss_fwd_bwd(lambda a, b, c, d: dag_log_likelihood(a, b, c, d, impl=kimpl), mm, lm, Pl, Tl),
                  args.repeats, sync)
    res["loss_fwd_bwd_b32_s"] = t
    return res


# --------------------------------------------------------------------------- report
def machine_info():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "load_average_at_start": list(os.getloadavg()), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def write_report(results, path_md):
    r = results
    lines = ["# DAG ops benchmark (nat_plugins.ops)", "",
             f"- Date: {r['date']}", f"- Command: `{r['command']}`",
             f"- Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores; Python {r['machine']['python']}, "
             f"torch {r['machine']['torch']}; GPU: {r['machine']['gpu'] or 'none'}; load average at start "
             f"{r['machine']['load_average_at_start'][0]:.1f} (the machine is shared; timings are noisy)",
             "- Times are medians of repeats measured in this one run; ratios compare numbers from this run.", ""]
    c = r.get("cpu")
    if c:
        lines += [f"## CPU, 1 thread, B={c['B']}, T={c['T']}, P={c['P']} (median of {c['repeats']})", "",
                  "| Op | This implementation | Goal | Met | Naive autograd-through-logsumexp |",
                  "|---|---|---|---|---|",
                  f"| likelihood forward | {c['loss_fwd_s']:.3f} s | | | |",
                  f"| likelihood forward+backward | {c['loss_fwd_bwd_s']:.3f} s | ≤ 0.30 s | "
                  f"{'yes' if c['goals']['loss_fwd_bwd_s']['met'] else 'NO'} | {c['naive_loss_fwd_bwd_s']:.3f} s "
                  f"({c['speedup_vs_naive']:.1f}× slower) |",
                  f"| likelihood fwd+bwd extra memory (peak RSS delta, incl. {c['grads_mb']:.1f} MB of grads) | "
                  f"{c['loss_extra_mem_mb']:.1f} MB | ≤ 40 MB | {'yes' if c['goals']['loss_extra_mem_mb']['met'] else 'NO'} | "
                  f"{c['naive_loss_extra_mem_mb']:.1f} MB ({c['memory_ratio_naive_over_ours']:.1f}×) |",
                  f"| likelihood: saved for backward | {c['loss_saved_for_backward_mb']:.1f} MB | | | "
                  f"{c['naive_loss_saved_for_backward_mb']:.1f} MB |",
                  f"| best alignment | {c['best_alignment_s']:.3f} s | ≤ 0.13 s | "
                  f"{'yes' if c['goals']['best_alignment_s']['met'] else 'NO'} | |",
                  f"| joint-Viterbi (max_length = P, β = 1) | {c['joint_viterbi_s']:.3f} s | ≤ 0.27 s | "
                  f"{'yes' if c['goals']['joint_viterbi_s']['met'] else 'NO'} | |", "",
                  f"Likelihood agrees with the naive one to {c['max_rel_diff_vs_naive_fp64']:.1e} relative (fp64).", "",
                  "Memory: peak-RSS increase of a fresh process over one forward+backward after a warm-up, with "
                  "`MALLOC_MMAP_THRESHOLD_=65536` so every tensor ≥ 64 KiB is returned to the OS when freed and "
                  "`/proc/self/clear_refs` resetting the peak; \"saved for backward\" sums the tensors autograd "
                  "keeps beyond references to the inputs (torch.autograd.graph.saved_tensors_hooks).", ""]
    g = r.get("gpu")
    if g:
        p = g["parity_fp32"]
        lines += [f"## GPU: {g['device_name']} (CUDA {g['torch_cuda']})", "",
                  "| Check | Value | Goal | Met |", "|---|---|---|---|",
                  f"| parity fp32, B=8 T=30 P=240: loss rel. err | {p['loss_rel_err']:.1e} | ≤ 1e-4 | "
                  f"{'yes' if p['met'] else 'NO'} |",
                  f"| grad match / links max abs err | {p['grad_match_max_abs_err']:.1e} / {p['grad_links_max_abs_err']:.1e} | | |",
                  f"| alignment equal; Viterbi paths equal; score rel. err | {p['alignment_equal']}; "
                  f"{p['viterbi_paths_equal']}; {p['viterbi_score_rel_err']:.1e} | | |",
                  f"| joint-Viterbi P=256, batch 256 | {g['viterbi_sentences_per_s']:.0f} sentences/s | ≥ 10,000 | "
                  f"{'yes' if g['viterbi_sentences_per_s'] >= 10000 else 'NO'} |",
                  f"| joint-Viterbi batch 1 vs the reference toolkit's Python loop | {g['viterbi_b1_speedup']:.1f}× "
                  f"({g['viterbi_b1_cuda_s'] * 1e3:.2f} ms vs {g['viterbi_b1_python_loop_s'] * 1e3:.1f} ms) | ≥ 20× | "
                  f"{'yes' if g['viterbi_b1_speedup'] >= 20 else 'NO'} |",
                  f"| likelihood fwd+bwd peak above inputs (B=32) | {g['loss_gpu_peak_mb']:.1f} MB | ≤ grads + 2·B·T·P "
                  f"floats (+64 KiB) = {g['loss_gpu_bound_mb']:.1f} MB | { {True: 'yes', False: 'NO', None: 'n/a'}[g['loss_gpu_memory_met']] } |",
                  f"| likelihood fwd+bwd time (B=32) | {g['loss_fwd_bwd_b32_s'] * 1e3:.2f} ms | | |", ""]
    elif r.get("gpu_note"):
        lines += ["## GPU", "", r["gpu_note"], ""]
    with open(path_md, "w") as f:
        f.write("\n".join(lines))


def write_plot(results, path_png):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    c = results.get("cpu")
    if not c:
        return False
    names = ["loss fwd+bwd", "best alignment", "joint-Viterbi"]
    vals = [c["loss_fwd_bwd_s"], c["best_alignment_s"], c["joint_viterbi_s"]]
    goals = [CPU_GOALS["loss_fwd_bwd_s"], CPU_GOALS["best_alignment_s"], CPU_GOALS["joint_viterbi_s"]]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], vals, width=0.4, label="nat_plugins.ops (torch, 1 thread)")
    ax.bar([i + 0.2 for i in x], goals, width=0.4, label="goal", color="lightgray")
    ax.set_xticks(list(x))
    ax.set_xticklabels(names)
    ax.set_ylabel("seconds (B=32, T=30, P=240)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path_png, dpi=100)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["all", "cpu", "gpu"], default="all",
                    help="which benches to run (gpu is skipped without CUDA)")
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats per measurement (median reported)")
    ap.add_argument("--B", type=int, default=32)
    ap.add_argument("--T", type=int, default=30)
    ap.add_argument("--P", type=int, default=240)
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "dag_ops"),
                    help="output path without extension (.md, .json, .png are written)")
    ap.add_argument("--gpu-dry-run", action="store_true",
                    help="run the GPU checks on the CPU, reference ops standing in for the kernels, tiny sizes")
    ap.add_argument("--_memory-probe", dest="memory_probe", choices=["ours", "naive"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_probe:
        memory_probe(args.memory_probe, args.B, args.T, args.P)
        return 0
    results = {"date": datetime.date.today().isoformat(),
               "command": "python " + " ".join([os.path.relpath(os.path.abspath(__file__), ROOT)] + sys.argv[1:]),
               "machine": machine_info()}
    if args.device in ("all", "cpu"):
        results["cpu"] = bench_cpu(args)
    if args.device in ("all", "gpu"):
        if torch.cuda.is_available() or args.gpu_dry_run:
            results["gpu"] = bench_gpu(args)
        else:
            results["gpu_note"] = "Not run: no CUDA device on this machine (run this script on a GPU machine)."
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(results, f, indent=2)
    write_report(results, args.out + ".md")
    write_plot(results, args.out + ".png")
    print(open(args.out + ".md").read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
