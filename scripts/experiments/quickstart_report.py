#!/usr/bin/env python3
"""Collect the quickstart's per-model results into one table.

Reads, for each model, what ``examples/quickstart/run.sh`` left in
``RUN_DIR/<model>/``: ``score.json`` (from scripts/evaluation/score.py),
``generate.out`` (fairseq-generate output with its timing line and
hypotheses), ``train.log`` (updates reached, validation losses) and
``curve/<updates>.json`` (BLEU of the kept curve checkpoints).  Prints the table
and 3 example translations, and writes the same as Markdown with the machine,
date, mode and command that produced it, plus the learning curves as a PNG and a
JSON file beside it (``quickstart.md`` -> ``quickstart_curves.png``,
``quickstart_curves.json``).
"""
import argparse
import datetime
import json
import os
import platform
import re
import sys

# score.py lives in the evaluation job folder; put it on sys.path whether this is run or imported.
_EVALUATION = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "evaluation")
if _EVALUATION not in sys.path:
    sys.path.insert(0, _EVALUATION)
import score  # noqa: E402  (scripts/evaluation/score.py)

_SPEED = re.compile(r"Translated ([\d,]+) sentences .* in ([\d.]+)s \(([\d.]+) sentences/s")
_UPDATES = re.compile(r"num_updates[ =](\d+)")
_TRAIN_TIME = re.compile(r"done training in ([\d.]+) seconds")
_VALID = re.compile(r"\| valid \|.*?\| loss ([\d.]+) .*?\| num_updates (\d+)")
N_EXAMPLES = 3


class ReportError(ValueError):
    """A model's results are missing."""


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as error:
        raise ReportError(f"cannot read {path}: {error.strerror or error}") from error


def decoding_speed(generate_text):
    """Sentences/s from fairseq-generate's own "Translated ..." line."""
    match = _SPEED.search(generate_text)
    return float(match.group(3)) if match else None


def training_progress(train_text):
    """``(updates, seconds)`` reached, from a fairseq-train log."""
    updates = [int(value) for value in _UPDATES.findall(train_text)]
    seconds = _TRAIN_TIME.search(train_text)
    return (max(updates) if updates else None), (float(seconds.group(1)) if seconds else None)


def learning_curve(folder, train_text):
    """``{"valid_loss": [(updates, bits)], "bleu": [(updates, tokenized BLEU)]}`` of one model's run."""
    valid = {int(u): float(loss) for loss, u in _VALID.findall(train_text)}
    bleu = {}
    curve_dir = os.path.join(folder, "curve")
    if os.path.isdir(curve_dir):
        for name in os.listdir(curve_dir):
            if re.fullmatch(r"\d+\.json", name):
                bleu[int(name[:-5])] = json.loads(read_text(os.path.join(curve_dir, name)))["bleu_tok"]
    return {"valid_loss": sorted(valid.items()), "bleu": sorted(bleu.items())}


def still_improving(curve):
    """'yes' if the last validation loss fell by >= 2% over the last quarter of the run, else 'no'."""
    points = curve["valid_loss"]
    if len(points) < 2:
        return "-"
    last_u, last = points[-1]
    earlier = [loss for u, loss in points if u <= last_u * 0.75] or [points[0][1]]
    return "yes" if last <= earlier[-1] * 0.98 else "no"


def collect(run_dir, name):
    folder = os.path.join(run_dir, name)
    result = json.loads(read_text(os.path.join(folder, "score.json")))
    generate_text = read_text(os.path.join(folder, "generate.out"))
    result["speed"] = decoding_speed(generate_text)
    train_text = read_text(os.path.join(folder, "train.log"))
    result["updates"], result["train_seconds"] = training_progress(train_text)
    result["curve"] = learning_curve(folder, train_text)
    _, hyps, _ = score.parse_generate_lines(generate_text.splitlines())
    result["hypotheses"] = score.moses_detokenize(hyps, "de")
    result.update(degeneracy(hyps, result.get("bleu_tok_detail", {})))
    return result


def degeneracy(hyps, bleu_detail):
    """Signs of degenerate output: the tokenized length ratio (hypothesis / reference tokens, from the BLEU
    counts) and the share of hypotheses that are empty or punctuation only (e.g. "." or ".............")."""
    ref_len = bleu_detail.get("ref_len")
    ratio = bleu_detail["hyp_len"] / ref_len if ref_len else None
    hollow = sum(not any(ch.isalnum() for ch in h) for h in hyps)
    return {"length_ratio": ratio, "punct_only_pct": 100.0 * hollow / len(hyps) if hyps else None}


def pick_examples(sources, count=N_EXAMPLES, min_words=6):
    """Indices of the first ``count`` test sentences with at least
    ``min_words`` words: longer than a headword, so the examples show
    actual sentence translation (deterministic across runs)."""
    chosen = [i for i, line in enumerate(sources) if len(line.split()) >= min_words][:count]
    return chosen or list(range(min(count, len(sources))))


def machine_description():
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, torch {torch.__version__}"


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def table_lines(models, results):
    lines = [
        "| Model | Updates | Train (min) | BLEU (tok) | sacreBLEU | chrF | Length ratio | Empty or punctuation only "
        "| Decoding (sent/s) | Still improving? |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, desc in models:
        r = results[name]
        minutes = None if r["train_seconds"] is None else r["train_seconds"] / 60
        lines.append(
            f"| {name}: {desc} | {r['updates'] if r['updates'] is not None else '-'} | {_fmt(minutes, 1)} | "
            f"{_fmt(r['bleu_tok'])} | {_fmt(r['sacrebleu'])} | {_fmt(r['chrf'])} | {_fmt(r.get('length_ratio'))} | "
            f"{_fmt(r.get('punct_only_pct'), 1)}% | {_fmt(r['speed'], 1)} | "
            f"{still_improving(r['curve'])} |"
        )
    return lines


def write_curves(stem, models, results):
    """``<stem>_curves.json`` and ``<stem>_curves.png``: validation loss and BLEU against updates."""
    data = {name: results[name]["curve"] for name, _ in models}
    with open(stem + "_curves.json", "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font search floods a DEBUG root logger
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, curve in data.items():
        if curve["valid_loss"]:
            left.plot(*zip(*curve["valid_loss"]), marker="o", ms=3, label=name)
        if curve["bleu"]:
            right.plot(*zip(*curve["bleu"]), marker="o", label=name)
    left.set(title="validation loss (bits)", xlabel="updates")
    right.set(title="test BLEU (tok) of curve checkpoints", xlabel="updates")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(stem + "_curves.png", dpi=100)
    plt.close(fig)


def example_lines(models, results, sources, references):
    lines = []
    for number, index in enumerate(pick_examples(sources), 1):
        lines.append(f"{number}. EN: {sources[index]}")
        lines.append(f"   DE (reference): {references[index]}")
        for name, _ in models:
            lines.append(f"   {name}: {results[name]['hypotheses'][index]}")
    return lines


def build_report(args, models):
    results = {name: collect(args.run_dir, name) for name, _ in models}
    sources = read_text(os.path.join(args.raw_dir, "test.en")).splitlines()
    references = read_text(os.path.join(args.raw_dir, "test.de")).splitlines()
    first = results[models[0][0]]
    table = table_lines(models, results)
    examples = example_lines(models, results, sources, references)
    notes = [
        f"Test split: {first['sentences']} sentences of the Ding-dictionary corpus "
        f"({args.raw_dir}, built by scripts/data/build_corpus.py).",
        "BLEU (tok): Moses-tokenized, compound-split (##AT##) 4-gram BLEU, the NAT papers' convention; "
        f"sacreBLEU: {first['sacrebleu_signature']}; chrF: {first['chrf_signature']}.",
        "Scores are of the average of the last checkpoints; decoding speed is fairseq-generate's own "
        "sentences/s on the whole test split (batch 128).",
    ]
    notes.append("Length ratio = hypothesis / reference tokens (tokenized, as BLEU counts them); empty or "
                 "punctuation only = hypotheses without a letter or digit (the degenerate outputs of an "
                 "untrained NAT, e.g. \".............\").")
    notes.append("Still improving? = the last validation loss is >= 2% below the loss at three quarters of "
                 "the run.")
    notes += long_run_notes(args.output, results)
    return table, examples, notes, results


#: the committed long-run record of the same models on the same corpus (scripts/experiments/learning_curves.py)
LONG_RUN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "benchmarks", "learning_curves.md")


def long_run_notes(report_path, results, long_run=LONG_RUN):
    """Notes placing this run's models on the long-run curves (``long_run`` and its JSON), when recorded.

    Same models, data and seed as the quickstart, so a quickstart model of N updates sits on the long run's
    curve at N updates: the note gives the long run's valid BLEU there and at its end, and the updates at
    which it passed each BLEU level.
    """
    if not os.path.exists(long_run):
        return ["Long-run curves of these models on the same corpus: benchmarks/learning_curves.md "
                "(not recorded yet; scripts/experiments/learning_curves.py)."]
    link = os.path.relpath(long_run, os.path.dirname(os.path.abspath(report_path))) if report_path else long_run
    notes = [f"Long-run curves of these models on the same corpus, validation BLEU every few hundred updates: "
             f"[benchmarks/learning_curves.md]({link})."]
    try:
        with open(os.path.splitext(long_run)[0] + ".json", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return notes
    for name, result in results.items():
        model = data.get("models", {}).get(name)
        if not model or not model.get("valid") or result.get("updates") is None:
            continue
        points = [(p["updates"], p["bleu_tok"]) for p in model["valid"]]
        here = [p for p in points if p[0] <= result["updates"]]
        at = (f"valid BLEU {here[-1][1]:.2f} at {here[-1][0]} updates" if here
              else f"no point yet at {result['updates']} updates (first: {points[0][0]})")
        passes = [f"{level} at {row['updates']} updates" if row.get("updates") is not None
                  else f"{level} not reached" for level, row in data.get("first_pass", {}).get(name, {}).items()]
        notes.append(f"{name} on the long run: {at}, {points[-1][1]:.2f} at {points[-1][0]} updates"
                     + (f"; passes valid BLEU {', '.join(passes)}" if passes else "") + ".")
    return notes


def write_markdown(path, args, table, examples, notes):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = [
        "# Quickstart results",
        "",
        f"- Command: `{args.command}`",
        f"- Date: {now}",
        f"- Machine: {machine_description()}",
        f"- Mode: {args.mode} (update budgets; see examples/quickstart/models.sh)",
        "",
        *table,
        "",
        *[f"- {note}" for note in notes],
        "",
        f"![learning curves]({os.path.splitext(os.path.basename(path))[0]}_curves.png)",
        "",
        "## Example translations",
        "",
        "```",
        *examples,
        "```",
        "",
    ]
    if args.note:
        text[5:5] = [f"- Note: {args.note}"]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(text))


def parse_models(specs):
    models = []
    for spec in specs:
        name, _, desc = spec.partition("=")
        models.append((name, desc or name))
    return models


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Print and save the quickstart comparison table.")
    parser.add_argument("--run-dir", default="runs/quickstart", help="folder with one subfolder per model")
    parser.add_argument("--raw-dir", default="data/quickstart/raw", help="raw corpus (test.en / test.de)")
    parser.add_argument("--models", nargs="+", required=True, metavar="NAME[=DESCRIPTION]")
    parser.add_argument("--mode", default="cpu", choices=("cpu", "gpu"), help="which mode of run.sh trained them")
    parser.add_argument("--command", default="make quickstart", help="command line to record")
    parser.add_argument("--note", help="extra line for the Markdown report (e.g. machine load)")
    parser.add_argument("--output", help="Markdown file to write (e.g. benchmarks/quickstart.md)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    models = parse_models(args.models)
    try:
        table, examples, notes, results = build_report(args, models)
    except (ReportError, score.ScoreError) as error:
        print(f"quickstart_report.py: error: {error}", file=sys.stderr)
        return 2
    print("\n".join(table + [""] + examples))
    if args.output:
        write_markdown(args.output, args, table, examples, notes)
        write_curves(os.path.splitext(args.output)[0], models, results)
        print(f"\n(written to {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
