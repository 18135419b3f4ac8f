"""The reproduction suite's report (scripts/experiments/reproduce.py): Markdown table, JSON records, accuracy-vs-updates PNG.

Records are ``{"experiment", "system", "metric", "value", "updates"}`` (``experiment`` is the data preset,
``system`` is ``<run>:<decoding>``, metrics ``token_acc``, ``seq_acc`` and ``mixed_outputs`` (outputs whose right
tokens come from more than one modality) in %, ``valid_min_loss`` in bits per
target token: the checkpoint's, the same for every decoding of it).  The acceptance lines of
issues #15 and #16 are computed from the records; a cell that was not measured is reported as such.
"""
import datetime
import json
import os
import sys

# This folder (quickstart_report.py) and scripts/evaluation (score.py), whether run or imported.
_SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [p for p in (os.path.join(_SCRIPTS, d) for d in ("experiments", "evaluation")) if p not in sys.path]

import quickstart_report  # noqa: E402
import score  # noqa: E402

#: DiffGLAT Table 2 (token %, sequence %; columns AR, NAR, "NAR w/ Middle", "PML Last") on the full task.
PAPER = {("full", "ar:beam4"): (100.0, 100.0), ("full", "vanilla:1pass"): (56.6, 0.0),
         ("full", "pml:middle"): (98.8, 93.4), ("full", "pml:last"): (97.7, 88.6)}
N_EXAMPLES = 20


def final_cells(records):
    """``{(experiment, system): {"updates", metric: value, ...}}`` at each system's largest update count."""
    cells = {}
    for rec in records:
        key = (rec["experiment"], rec["system"])
        cell = cells.setdefault(key, {"updates": -1})
        if rec["updates"] > cell["updates"]:
            cells[key] = cell = {"updates": rec["updates"]}
        if rec["updates"] == cell["updates"]:
            cell[rec["metric"]] = rec["value"]
    return cells


def curves(records):
    """``{(experiment, system, metric): [(updates, value)]}`` sorted by updates."""
    out = {}
    for rec in records:
        out.setdefault((rec["experiment"], rec["system"], rec["metric"]), []).append((rec["updates"], rec["value"]))
    return {k: sorted(v) for k, v in out.items()}


def trend(points):
    """'rising', 'flat' or '-' from the last two points of a curve (>= 1 point of accuracy = a change)."""
    if len(points) < 2:
        return "-"
    last, before = points[-1][1], points[-2][1]
    if last >= 99.95:
        return "converged"
    return "rising" if last - before >= 1.0 else ("falling" if before - last >= 1.0 else "flat")


def best_point(points):
    """``(value, [updates at which it was reached])`` of a curve's maximum, or None."""
    if not points:
        return None
    top = max(v for _, v in points)
    return top, [u for u, v in points if v == top]


def acceptance(cells, curve_map=None):
    """Lines ``(claim, measured, verdict)`` for the issues' thresholds.

    "Reaches" claims (easy DAT) are judged on the best kept checkpoint and show the last one too; the
    others on the last checkpoint."""
    def get(exp, system, metric="seq_acc"):
        cell = cells.get((exp, system))
        return None if cell is None or metric not in cell else cell[metric]

    def line(claim, value, ok, shown=None):
        if value is None:
            return claim, "not measured", "MISSING"
        return claim, shown if shown is not None else f"{value:.1f}", "met" if ok(value) else "MISSED"

    easy_dat = best_point((curve_map or {}).get(("easy", "dat:lookahead", "seq_acc"), []))
    easy_text = None if easy_dat is None else (
        f"best {easy_dat[0]:.1f} at {', '.join(map(str, easy_dat[1]))} updates; "
        f"last {get('easy', 'dat:lookahead'):.1f}")
    rows = [
        line("easy: DAT (glancing) reaches >= 99% sequence accuracy", None if easy_dat is None else easy_dat[0],
             lambda v: v >= 99, easy_text),
        line("Table 2: AR sequence accuracy >= 95%", get("full", "ar:beam4"), lambda v: v >= 95),
        line("Table 2: vanilla NAR sequence accuracy <= 5%", get("full", "vanilla:1pass"), lambda v: v <= 5),
        line("Table 2: PML middle layer sequence accuracy >= 80%", get("full", "pml:middle"), lambda v: v >= 80),
        line("Table 2: the same at twice the budget (pml_long)", get("full", "pml_long:middle"), lambda v: v >= 80),
        line("full task: DAT sequence accuracy >= 90%", get("full", "dat:lookahead"), lambda v: v >= 90),
        line("full task: the same at twice the budget (dat_long)", get("full", "dat_long:lookahead"),
             lambda v: v >= 90),
    ]
    for exp in ("easy", "full"):
        dat, diff = get(exp, "dat:lookahead"), get(exp, "diffglat:viterbi")
        both = None if dat is None or diff is None else diff - dat
        rows.append(line(f"{exp}: DiffGLAT sequence accuracy >= DAT's", both, lambda v: v >= 0,
                         None if both is None else f"{diff:.1f} vs {dat:.1f}"))
        c10, c1 = get(exp, "cmlm:10iter"), get(exp, "cmlm:1pass")
        both = None if c10 is None or c1 is None else c10 - c1
        rows.append(line(f"{exp}: CMLM 10 iterations > 1 pass (sequence accuracy)", both, lambda v: v > 0,
                         None if both is None else f"{c10:.1f} vs {c1:.1f}"))
        l12, l1 = get(exp, "sundae_l12:T10"), get(exp, "sundae_l1:T10")
        both = None if l12 is None or l1 is None else (l12, l1)
        rows.append(line(f"{exp}: SUNDAE L(1:2) beats L(1) at T=10 by >= max(20 points, 2x L(1))",
                         None if both is None else l12 - l1,
                         lambda v: both is not None and v >= max(20.0, both[1]), 
                         None if both is None else f"{l12:.1f} vs {l1:.1f}"))
    return rows


def examples(generate_out, count=N_EXAMPLES):
    """The first ``count`` (source, hypothesis) pairs of a fairseq-generate output, in test order."""
    if not os.path.exists(generate_out):
        return []
    lines = quickstart_report.read_text(generate_out).splitlines()
    ids, hyps, _ = score.parse_generate_lines(lines)
    sources = {}
    for line in lines:
        if line.startswith("S-"):
            head, text = line.split("\t", 1)
            sources[int(head[2:])] = text
    return [(sources.get(i, "?"), h) for i, h in sorted(zip(ids, hyps))][:count]


def plot(path, curve_map, presets):
    import logging

    # fairseq (imported through score.py) leaves the root logger at DEBUG: without this, pages of font search
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exps = [p for p in presets if any(k[0] == p for k in curve_map)]
    if not exps:
        return False
    fig, axes = plt.subplots(1, len(exps), figsize=(6.0 * len(exps), 5.5), squeeze=False)
    for ax, exp in zip(axes[0], exps):
        systems = sorted({k[1] for k in curve_map if k[0] == exp})
        colors = matplotlib.colormaps["tab20"]
        for i, system in enumerate(systems):
            for metric, style in (("seq_acc", "-"), ("token_acc", ":")):
                points = curve_map.get((exp, system, metric))
                if points:
                    ax.plot(*zip(*points), style, marker="o", ms=3, color=colors(i % 20),
                            label=f"{system} ({'seq' if metric == 'seq_acc' else 'tok'})")
        ax.set_title(exp)
        ax.set_xlabel("updates")
        ax.set_ylabel("accuracy vs closest target (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=5, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(report, records, experiments, models, presets, data_dirs, run_dir, command):
    os.makedirs(os.path.dirname(os.path.abspath(report)), exist_ok=True)
    stem = os.path.splitext(report)[0]
    with open(stem + ".json.part", "w", encoding="utf-8") as handle:
        json.dump(sorted(records, key=lambda r: (r["experiment"], r["system"], r["metric"], r["updates"])),
                  handle, indent=0)
    os.replace(stem + ".json.part", stem + ".json")
    curve_map = curves(records)
    has_png = plot(stem + ".png", curve_map, list(presets))
    cells = final_cells(records)
    today = datetime.date.today().isoformat()
    out = [
        "# Reproduction suite: synthetic multimodality (DiffGLAT App. A) and the SUNDAE/CMLM ablations", "",
        f"- Command: `{command}` (scripts/experiments/reproduce.py; experiments in scripts/experiments/reproduce_experiments.py)",
        f"- Machine: {quickstart_report.machine_description()}; one thread per run; written {today}",
        "- Budgets are update counts (`--max-update`), so the numbers do not depend on machine load.",
        "- Accuracy is against the closest candidate target (token accuracy pooled, sequence accuracy = exact).",
        "- Mixed outputs (ours, a diagnostic): the share of outputs whose right tokens come from more than one "
        "modality, i.e. wrong because the positions did not agree on a modality, not because a token is wrong.",
        "- Valid min loss: the checkpoint's training loss (its criterion's NLL, read deterministically: no label "
        "smoothing, glancing or random masking; scripts/evaluation/min_candidate_loss.py) on the validation split, "
        "per sentence the minimum over the source's candidate targets, then the mean over sentences, in bits per "
        "target token (a model that commits to one mode is not penalised for the others).  It compares "
        "checkpoints of one model; across model families the readings differ (e.g. one all-mask pass for CMLM, "
        "teacher forcing for AR).",
        "", "## Data presets", "", "| Preset | N | length | modalities | train/valid/test |", "|---|---|---|---|---|",
    ]
    for name, p in presets.items():
        out.append(f"| {name} | {p['num_tokens']} | {p['length']} | {p['modalities']} | "
                   f"{p['train']}/{p['valid']}/{p['test']} |")
    out += ["", "## Results (last checkpoint of each run)", "",
            "| Preset | System | Updates | Token acc. | Seq. acc. | Mixed outputs | Valid min loss (bits) "
            "| Best seq. acc. (updates) | Paper (tok/seq) | Curve | Model |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for exp in experiments:
        for system, _ in models[exp["model"]]["decodings"]:
            key = (exp["preset"], f"{exp['name']}:{system}")
            cell = cells.get(key)
            paper = PAPER.get(key)
            paper_text = f"{paper[0]:.1f} / {paper[1]:.1f}" if paper else "-"
            if cell is None:
                out.append(f"| {key[0]} | {key[1]} | not run | | | | | | {paper_text} | | {models[exp['model']]['desc']} |")
                continue
            best = best_point(curve_map.get(key + ("seq_acc",), []))
            best_text = "-" if best is None else f"{best[0]:.1f} ({best[1][0]}" + ("+" if len(best[1]) > 1 else "") + ")"
            loss, mixed = cell.get("valid_min_loss"), cell.get("mixed_outputs")
            out.append(f"| {key[0]} | {key[1]} | {cell['updates']} | {cell.get('token_acc', float('nan')):.1f} | "
                       f"{cell.get('seq_acc', float('nan')):.1f} | {'-' if mixed is None else f'{mixed:.1f}'} | "
                       f"{'-' if loss is None else f'{loss:.3f}'} | "
                       f"{best_text} | {paper_text} | "
                       f"{trend(curve_map.get(key + ('seq_acc',), []))} | {models[exp['model']]['desc']} |")
    loss_rows = []
    for exp in experiments:
        curve_system = models[exp["model"]]["decodings"][0][0]
        points = curve_map.get((exp["preset"], f"{exp['name']}:{curve_system}", "valid_min_loss"))
        if points:
            loss_rows.append(f"| {exp['preset']} | {exp['name']} | " + ", ".join(f"{u}: {v:.3f}" for u, v in points) + " |")
    if loss_rows:
        out += ["", "## Validation loss against the closest candidate, per kept checkpoint (bits per target token)", "",
                "| Preset | Run | updates: valid min loss |", "|---|---|---|"] + loss_rows
    out += ["", "## Acceptance (issues #15, #16)", "", "| Claim | Measured | Verdict |", "|---|---|---|"]
    out += [f"| {c} | {m} | {v} |" for c, m, v in acceptance(cells, curve_map)]
    if has_png:
        out += ["", f"![accuracy against updates]({os.path.basename(stem)}.png)", "",
                "Solid: sequence accuracy; dotted: token accuracy; the first decoding of each run is decoded at every "
                "kept checkpoint."]
    out += ["", f"## Decoded examples (first {N_EXAMPLES} test sentences, last checkpoint)", ""]
    for exp in experiments:
        for system, _ in models[exp["model"]]["decodings"]:
            cell = cells.get((exp["preset"], f"{exp['name']}:{system}"))
            if cell is None:
                continue
            gen = os.path.join(run_dir(exp), "eval", f"{system}_{cell['updates']}.generate.out")
            rows = examples(gen)
            if rows:
                out += [f"<details><summary>{exp['preset']} / {exp['name']}:{system}</summary>", "", "```"]
                out += [f"S {s}\nH {h}" for s, h in rows] + ["```", "</details>", ""]
    with open(report + ".part", "w", encoding="utf-8") as handle:
        handle.write("\n".join(out) + "\n")
    os.replace(report + ".part", report)
