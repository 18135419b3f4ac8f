"""Reports of ``scripts/benchmarks/benchmark.py``: Markdown, JSON, plot, and the
"where NAT loses, and by how much" section computed from the numbers.

Everything here works on the results dictionary alone (``results.json``),
so a report can be regenerated without re-measuring::

    python scripts/benchmarks/benchmark_report.py benchmarks/results.json --out benchmarks
"""
import argparse
import json
import os
import sys

__all__ = ["comparisons", "markdown", "markdown_table", "write_plot", "write_all"]

MD_NAME, JSON_NAME, PLOT_NAME = "RESULTS.md", "results.json", "results_bleu_speed.png"


# --------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------


def _entries(results):
    return {e["name"]: e for e in results["entries"]}


def _rows(results):
    return {(r["entry"], r["config"]): r for r in results["rows"]}


def reference_entries(results):
    """``(fairseq AR reference, {device: CTranslate2 reference})``.

    The fairseq reference is the AR entry with beam 4 (the usual deployed
    setting), else the AR entry with the largest beam.  The CTranslate2
    reference is its int8 conversion on CPU and float16 on GPU (what a user
    would deploy), else any conversion of that kind.
    """
    entries = results["entries"]
    ar = [e for e in entries if e["kind"] == "AR" and e["backend"] == "fairseq"]
    if not ar:
        return None, {}
    fair = next((e for e in ar if e.get("beam") == 4), None) or max(ar, key=lambda e: e.get("beam") or 0)
    ct2 = {}
    for device, ctype in (("cpu", "int8"), ("cuda", "float16")):
        cands = [e for e in entries if e["backend"] == "ctranslate2" and e["compute_type"] == ctype]
        pick = next((e for e in cands if e["source"] == fair["name"]), None) or (cands[0] if cands else None)
        if pick is not None:
            ct2[device] = pick
    return fair, ct2


def _ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def comparisons(results):
    """Every NAT entry against the references, per configuration: the fairseq AR
    entry, its CTranslate2 conversion, and for an exported fast-path entry also the
    plugin's eager generator on the same checkpoint and flags (``reference_kind``
    ``"eager NAT"``).

    ``latency_ratio`` = NAT ms / reference ms (> 1: NAT is slower);
    ``throughput_ratio`` = NAT sentences/s / reference sentences/s
    (< 1: NAT is slower); ``bleu_delta`` = NAT BLEU - reference BLEU (tokenized).
    """
    entries, rows = _entries(results), _rows(results)
    fair, ct2 = reference_entries(results)
    out = []
    configs = []
    for r in results["rows"]:
        if r["config"] not in configs:
            configs.append(r["config"])
    for config in configs:
        for nat in (e for e in results["entries"] if e["kind"] == "NAT"):
            nat_row = rows.get((nat["name"], config))
            if nat_row is None:
                continue
            device = nat_row["device"]
            eager = entries.get(nat.get("source")) if nat["backend"] != "fairseq" else None
            for ref in (fair, ct2.get(device), eager):
                if ref is None or (ref["name"], config) not in rows:
                    continue
                ref_row = rows[(ref["name"], config)]
                out.append({
                    "config": config,
                    "nat": nat["name"],
                    "reference": ref["name"],
                    "reference_label": ref["label"],
                    "reference_kind": "eager NAT" if ref is eager else "AR",
                    "nat_latency_ms": nat_row["latency"]["median_ms"],
                    "reference_latency_ms": ref_row["latency"]["median_ms"],
                    "latency_ratio": _ratio(nat_row["latency"]["median_ms"], ref_row["latency"]["median_ms"]),
                    "latency_p90_ratio": _ratio(nat_row["latency"]["p90_ms"], ref_row["latency"]["p90_ms"]),
                    "nat_sentences_per_s": nat_row["throughput"]["sentences_per_s"],
                    "reference_sentences_per_s": ref_row["throughput"]["sentences_per_s"],
                    "throughput_ratio": _ratio(nat_row["throughput"]["sentences_per_s"],
                                               ref_row["throughput"]["sentences_per_s"]),
                    "tokens_ratio": _ratio(nat_row["throughput"]["target_tokens_per_s"],
                                           ref_row["throughput"]["target_tokens_per_s"]),
                    "bleu_delta": round(entries[nat["name"]]["quality"]["bleu_tok"]
                                        - entries[ref["name"]]["quality"]["bleu_tok"], 2),
                    "chrf_delta": round(entries[nat["name"]]["quality"]["chrf"]
                                        - entries[ref["name"]]["quality"]["chrf"], 2),
                })
    return out


def _times(x, faster_word, slower_word):
    """``2.50x slower`` / ``1.30x faster`` for a ratio where > 1 means slower."""
    if x is None:
        return "n/a"
    if x >= 1:
        return f"{x:.2f}x {slower_word}"
    return f"{1 / x:.2f}x {faster_word}"


def fast_path_section(results):
    """Plain-words lines: the exported fast path against the eager generator it replaces."""
    comps = [c for c in results.get("comparisons") or comparisons(results) if c.get("reference_kind") == "eager NAT"]
    if not comps:
        return ["No exported fast-path rows in this run (onnxruntime not installed, --fast-path off, "
                "or no CMLM/DAT/DiffGLAT entry)."]
    return [f"- **{c['nat']}** vs `{c['reference']}`, {c['config']}: batch-1 latency {c['nat_latency_ms']:.1f} vs "
            f"{c['reference_latency_ms']:.1f} ms/sentence ({_times(c['latency_ratio'], 'faster', 'slower')}); "
            f"throughput {c['nat_sentences_per_s']:.1f} vs {c['reference_sentences_per_s']:.1f} sentences/s "
            f"({_times(_ratio(1, c['throughput_ratio']) if c['throughput_ratio'] else None, 'faster', 'slower')})."
            for c in comps]


def losses_section(results):
    """Plain-words lines: where NAT loses against the AR references, and by how much."""
    comps = [c for c in results.get("comparisons") or comparisons(results) if c.get("reference_kind") != "eager NAT"]
    if not comps:
        return ["No NAT entry with a reference (fairseq AR or CTranslate2) in the same configuration: nothing to compare."]
    lines = []
    lose = {"latency": 0, "throughput": 0, "bleu": 0}
    for c in comps:
        lat = _times(c["latency_ratio"], "faster", "slower")
        thr = _times(_ratio(1, c["throughput_ratio"]) if c["throughput_ratio"] else None, "faster", "slower")
        lose["latency"] += (c["latency_ratio"] or 0) > 1
        lose["throughput"] += (c["throughput_ratio"] or 0) < 1
        lose["bleu"] += c["bleu_delta"] < 0
        lines.append(
            f"- **{c['nat']}** vs {c['reference_label']} (`{c['reference']}`), {c['config']}: "
            f"batch-1 latency {c['nat_latency_ms']:.1f} vs {c['reference_latency_ms']:.1f} ms/sentence "
            f"(NAT {lat}); throughput {c['nat_sentences_per_s']:.1f} vs {c['reference_sentences_per_s']:.1f} "
            f"sentences/s (NAT {thr}); BLEU {c['bleu_delta']:+.2f}, chrF {c['chrf_delta']:+.2f}."
        )
    n = len(comps)
    summary = (
        f"Out of {n} NAT-vs-reference comparisons, NAT is slower at batch 1 in {lose['latency']}, "
        f"has lower large-batch throughput in {lose['throughput']}, and scores lower BLEU in {lose['bleu']}."
    )
    worst_thr = min((c for c in comps if c["throughput_ratio"]), key=lambda c: c["throughput_ratio"], default=None)
    worst_lat = max((c for c in comps if c["latency_ratio"]), key=lambda c: c["latency_ratio"], default=None)
    headline = []
    if worst_lat is not None:
        headline.append(f"the largest batch-1 gap is {worst_lat['nat']} vs `{worst_lat['reference']}` "
                        f"({worst_lat['config']}): NAT {_times(worst_lat['latency_ratio'], 'faster', 'slower')}")
    if worst_thr is not None:
        headline.append(f"the largest throughput gap is {worst_thr['nat']} vs `{worst_thr['reference']}` "
                        f"({worst_thr['config']}): NAT reaches {worst_thr['throughput_ratio']:.2f}x the reference's sentences/s")
    out = [summary + (" Headline: " + "; ".join(headline) + "." if headline else ""), ""] + lines
    odd = [e["name"] for e in results["entries"]
           if not 0.5 <= (e["quality"].get("length_ratio") or 1) <= 2]
    if odd:
        out += ["", f"Caution: the outputs of {', '.join(odd)} are far from the reference length (length ratio "
                "outside 0.5-2, see the table): decoding time grows with output length, so speed ratios involving "
                "such degenerate models say little about trained ones."]
    return out


# --------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------


def _fmt(x, digits=1):
    return "n/a" if x is None else f"{x:.{digits}f}"


def markdown_table(results):
    entries = _entries(results)
    failed = {c["entry"] for c in results.get("parity", []) if c["enforced"] and not c["ok"]}
    head = ("| Entry | Kind | Backend | Config | BLEU (tok) | sacreBLEU | chrF | Len ratio | Latency median (ms) "
            "| Latency p90 (ms) | Throughput (sent/s) | Throughput (tok/s) | Peak mem (MiB) |")
    lines = [head, "|" + "---|" * 13]
    for r in results["rows"]:
        e = entries[r["entry"]]
        q = e["quality"]
        name = e["name"] + (" **FAILED parity**" if e["name"] in failed else "")
        backend = e["backend"] + (f" {r['compute_type']}" if r.get("compute_type") else "")
        lines.append(
            f"| {name} | {e['kind']} | {backend} | {r['config']} | {q['bleu_tok']:.2f} | {q['sacrebleu']:.2f} | "
            f"{q['chrf']:.2f} | {_fmt(q.get('length_ratio'), 2)} | {_fmt(r['latency']['median_ms'])} | {_fmt(r['latency']['p90_ms'])} | "
            f"{_fmt(r['throughput']['sentences_per_s'])} | {_fmt(r['throughput']['target_tokens_per_s'], 0)} | "
            f"{_fmt(r['peak_memory_mib'])} |"
        )
    return "\n".join(lines)


def _contended(meta):
    """Other work shared the CPU: the 1-minute load was high at the start and, less the
    benchmark's own threads, still high at the end.  One sample alone misleads: the start
    includes whatever just finished (a training that ended seconds before), the end
    includes the benchmark itself."""
    machine = meta.get("machine") or {}
    start, end, cores = machine.get("load_average_start"), machine.get("load_average_end"), machine.get("cores")
    if start is None or not cores:
        return False
    if start[0] < 0.5 * cores:
        return False
    if end is None:
        return True
    own = max((meta.get("settings") or {}).get("threads") or [1])
    return end[0] - own >= 0.5 * cores


def markdown(results, plot_name=PLOT_NAME):
    meta = results["meta"]
    m, v, s = meta["machine"], meta["versions"], meta["settings"]
    lines = ["# Benchmarks: NAT decoders vs fairseq AR and CTranslate2", ""]
    if meta.get("note"):
        lines += [f"> **{meta['note']}**", ""]
    if _contended(meta):
        lines += [f"> Measured under contention: load average {m['load_average_start'][0]} at the start"
                  f"{' and ' + str(m['load_average_end'][0]) + ' at the end' if m.get('load_average_end') else ''}"
                  f" on {m['cores']} cores. Absolute times are inflated and noisy; ratios between entries measured "
                  "round-robin in the same run are more trustworthy than the absolute numbers.", ""]
    lines += [
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['date']}",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m.get('memory_gib')} GiB, {m['os']}"
        + (f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"),
        f"- Versions: python {v['python']}, torch {v['torch']}, fairseq {v['fairseq']}, "
        f"ctranslate2 {v.get('ctranslate2') or 'not installed'}, nat_plugins {v.get('nat_plugins')}, sacrebleu {v.get('sacrebleu')}",
        f"- Data: `{meta['data']}` split `{meta['split']}`; quality and throughput on {s['throughput_sentences']} "
        f"sentences in {s['batches']} batches of at most {s['max_tokens']} source tokens; batch-1 latency on a fixed "
        f"subset of {s['latency_sentences']} sentences (seed {s['seed']}); {s['warmup']} warm-up translations; "
        f"{s['reps']} round-robin repetitions, medians reported.",
        "",
        "## Results",
        "",
        markdown_table(results),
        "",
        f"![BLEU vs batch-1 latency and vs throughput]({plot_name})",
        "",
        "## Entries",
        "",
        "| Entry | Label | Decoding | Params (M) | Weights (MiB) | Checkpoint | Flags |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in results["entries"]:
        flags = f"`{e['args']}`" if e.get("args") else (f"converted from `{e['source']}`" if e.get("source") else "")
        lines.append(f"| {e['name']} | {e['label']} | {e['decoding']} | {e['params'] / 1e6:.2f} | "
                     f"{e['weights_mib']:.1f} | `{e['path']}` | {flags} |")
    lines += ["", "## Conversion checks", ""]
    if results.get("parity"):
        lines += [f"The CTranslate2 float32 conversion must give the same BLEU as fairseq on the same checkpoint and "
                  f"decoding settings within {meta['settings']['parity_tolerance']} (tokenized BLEU and sacreBLEU); "
                  "int8/float16 rows show the quantization's effect and are not enforced. A float32 exported fast-path row "
                  "(onnxruntime/torchscript) runs the same model and search on exported passes: every hypothesis must "
                  "be identical to its eager entry's; its int8 rows (ours: dynamic quantization of the weight "
                  "matrices) are reported, not enforced.", ""]
        lines += ["| Converted / exported entry | vs fairseq entry | BLEU (tok) delta | sacreBLEU delta | identical hypotheses | check |",
                  "|---|---|---|---|---|---|"]
        for c in results["parity"]:
            status = ("pass" if c["ok"] else "**FAILED**") if c["enforced"] else ("within" if c["ok"] else "outside") + " (not enforced)"
            lines.append(f"| {c['entry']} | {c['against']} | {c['bleu_tok_delta']:+.2f} | {c['sacrebleu_delta']:+.2f} | "
                         f"{c['identical_hypotheses']}/{c['sentences']} | {status} |")
    else:
        lines.append("No CTranslate2 or exported rows in this run (not installed, disabled, or no matching entry).")
    lines += ["", "## Exported fast path vs the eager generator", ""]
    lines += fast_path_section(results)
    lines += ["", "## Where NAT loses, and by how much", ""]
    lines += ["Ratios are computed from the table above, within each configuration (same machine, threads, inputs). "
              "Reference: the fairseq AR entry with beam 4 and its CTranslate2 int8 (CPU) / float16 (GPU) conversion.", ""]
    lines += losses_section(results)
    lines += [
        "",
        "## How it is measured",
        "",
        "- Every model is loaded once, in-process (`checkpoint_utils.load_model_ensemble` after `import nat_plugins`), and "
        "decoded through its task's `build_generator`: the plugin's NAT generator, fairseq's `SequenceGenerator` "
        "(incremental decoding) for the AR Transformer, and `ctranslate2.Translator.translate_batch` with the same beam, "
        "`max_len_a`/`max_len_b` (per batch, as fairseq) and `min_len`.",
        "- Only translation is timed: batches are collated/tokenized before the clock starts; BPE removal, "
        "detokenization and scoring (`scripts/evaluation/score.py`) happen after it stops, identically for every entry.",
        "- Batch-1 latency: each sentence of the subset alone; a sentence's time is its median over repetitions; "
        "median and p90 over sentences. Throughput: the whole set in the same length-sorted batches for every entry; "
        "median pass time over repetitions; target tokens are BPE tokens without `</s>`.",
        "- Peak memory: CPU resident-set high-water mark added during the throughput pass (`/proc/self/status` VmHWM after "
        "resetting it through `/proc/self/clear_refs`); GPU `torch.cuda.max_memory_allocated` (not visible for CTranslate2).",
        "- Len ratio: hypothesis/reference length in tokenized words (BLEU's hyp_len/ref_len); far from 1 means "
        "degenerate output, which also distorts speed (AR decoding time grows with the output length).",
        "- Exported fast path (`nat_plugins.export`): the entry's encoder and decoder passes traced and run by ONNX "
        "Runtime (`intra_op_num_threads=N`; int8 = `onnxruntime.quantization.quantize_dynamic`), the plugin's "
        "generator and strategy on their outputs; CPU only.",
        "- CPU threads: `torch.set_num_threads(N)` for fairseq, `intra_threads=N` for CTranslate2. Speed is never asserted "
        "in tests; these numbers are the only speed claims.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------


def write_plot(results, path):
    """Two panels: BLEU vs batch-1 median latency, BLEU vs sentences/s; one
    point per (entry, configuration), log-scale x."""
    import logging

    import matplotlib

    # fairseq's option parsing can leave the root logger at DEBUG; keep
    # matplotlib's font-matching chatter out of the benchmark's output.
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = _entries(results)
    configs = []
    for r in results["rows"]:
        if r["config"] not in configs:
            configs.append(r["config"])
    markers = "os^Dvx*P"
    # 20 distinct colours: with 10, a dozen entries repeat colours and points are misread
    colors = [plt.get_cmap("tab20")(i) for i in range(20)]
    names = [e["name"] for e in results["entries"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    panels = ((axes[0], lambda r: r["latency"]["median_ms"], "batch-1 latency, median ms/sentence (log)"),
              (axes[1], lambda r: r["throughput"]["sentences_per_s"], "large-batch throughput, sentences/s (log)"))
    bleus = [e["quality"]["bleu_tok"] for e in results["entries"]]
    for ax, xval, xlabel in panels:
        for r in results["rows"]:
            x = xval(r)
            if x is None or x <= 0:
                continue
            e = entries[r["entry"]]
            i = names.index(e["name"])
            # colour = entry, marker = configuration; NAT points have a black edge
            ax.scatter([x], [e["quality"]["bleu_tok"]], color=colors[i % len(colors)],
                       marker=markers[configs.index(r["config"]) % len(markers)], s=70, alpha=0.85,
                       edgecolors="black" if e["kind"] == "NAT" else "none", linewidths=1.2)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("BLEU (tokenized, compound-split)")
        ax.set_ylim(min(0.0, min(bleus)) - 0.5, max(1.0, max(bleus)) * 1.1 + 0.5)
        ax.grid(True, which="both", alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="", marker="o", color=colors[i % len(colors)],
                      markeredgecolor="black" if e["kind"] == "NAT" else colors[i % len(colors)],
                      label=f"{e['name']} ({e['kind']})") for i, e in enumerate(results["entries"])]
    handles += [Line2D([], [], linestyle="", marker=markers[j % len(markers)], color="grey", label=c)
                for j, c in enumerate(configs)]
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8, frameon=False)
    axes[0].set_title("quality vs batch-1 latency (left is better)")
    axes[1].set_title("quality vs throughput (right is better)")
    meta = results["meta"]
    fig.suptitle(f"{meta['data']} {meta['split']} - {meta['date']}" + (" - under contention" if _contended(meta) else ""),
                 fontsize=9)
    rows_of_legend = -(-len(handles) // 6)
    fig.tight_layout(rect=(0, 0.04 * rows_of_legend + 0.02, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(results, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    md, js, png = (os.path.join(out_dir, n) for n in (MD_NAME, JSON_NAME, PLOT_NAME))
    if "comparisons" not in results:
        results["comparisons"] = comparisons(results)
    with open(js, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    write_plot(results, png)
    with open(md, "w", encoding="utf-8") as handle:
        handle.write(markdown(results, os.path.basename(png)))
    return [md, js, png]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Regenerate the benchmark report from results.json.")
    parser.add_argument("results", help="results.json written by scripts/benchmarks/benchmark.py")
    parser.add_argument("--out", help="output folder (default: the folder of results.json)")
    args = parser.parse_args(argv)
    with open(args.results, encoding="utf-8") as handle:
        results = json.load(handle)
    results["comparisons"] = comparisons(results)
    for path in write_all(results, args.out or os.path.dirname(os.path.abspath(args.results))):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
