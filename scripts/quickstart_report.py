#!/usr/bin/env python3
"""Collect the quickstart's per-model results into one table.

Reads, for each model, what ``examples/quickstart/run.sh`` left in
``RUN_DIR/<model>/``: ``score.json`` (from scripts/score.py),
``generate.out`` (fairseq-generate output with its timing line and
hypotheses) and ``train.log`` (updates reached).  Prints the table and 3
example translations, and writes the same as Markdown with the machine, date
and command that produced it (benchmarks/quickstart.md).
"""
import argparse
import datetime
import json
import os
import platform
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import score  # noqa: E402  (scripts/score.py)

_SPEED = re.compile(r"Translated ([\d,]+) sentences .* in ([\d.]+)s \(([\d.]+) sentences/s")
_UPDATES = re.compile(r"num_updates[ =](\d+)")
_TRAIN_TIME = re.compile(r"done training in ([\d.]+) seconds")
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


def collect(run_dir, name):
    folder = os.path.join(run_dir, name)
    result = json.loads(read_text(os.path.join(folder, "score.json")))
    generate_text = read_text(os.path.join(folder, "generate.out"))
    result["speed"] = decoding_speed(generate_text)
    result["updates"], result["train_seconds"] = training_progress(read_text(os.path.join(folder, "train.log")))
    _, hyps, _ = score.parse_generate_lines(generate_text.splitlines())
    result["hypotheses"] = score.moses_detokenize(hyps, "de")
    return result


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


def table_lines(models, results, budget):
    lines = [
        "| Model | Train | Updates | BLEU (tok) | sacreBLEU | chrF | Decoding (sent/s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, desc in models:
        r = results[name]
        lines.append(
            f"| {name}: {desc} | {budget} min | {r['updates'] if r['updates'] is not None else '-'} | "
            f"{_fmt(r['bleu_tok'])} | {_fmt(r['sacrebleu'])} | {_fmt(r['chrf'])} | {_fmt(r['speed'], 1)} |"
        )
    return lines


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
    table = table_lines(models, results, args.budget)
    examples = example_lines(models, results, sources, references)
    notes = [
        f"Test split: {first['sentences']} sentences of the Ding-dictionary corpus "
        f"({args.raw_dir}, built by scripts/build_corpus.py).",
        "BLEU (tok): Moses-tokenized, compound-split (##AT##) 4-gram BLEU, the NAT papers' convention; "
        f"sacreBLEU: {first['sacrebleu_signature']}; chrF: {first['chrf_signature']}.",
        "Scores are of the average of the last checkpoints; decoding speed is fairseq-generate's own "
        "sentences/s on the whole test split (batch 128).",
    ]
    return table, examples, notes


def write_markdown(path, args, table, examples, notes):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = [
        "# Quickstart results",
        "",
        f"- Command: `{args.command}`",
        f"- Date: {now}",
        f"- Machine: {machine_description()}",
        "",
        *table,
        "",
        *[f"- {note}" for note in notes],
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
    parser.add_argument("--budget", default="?", help="training minutes per model")
    parser.add_argument("--command", default="make quickstart", help="command line to record")
    parser.add_argument("--note", help="extra line for the Markdown report (e.g. machine load)")
    parser.add_argument("--output", help="Markdown file to write (e.g. benchmarks/quickstart.md)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    models = parse_models(args.models)
    try:
        table, examples, notes = build_report(args, models)
    except (ReportError, score.ScoreError) as error:
        print(f"quickstart_report.py: error: {error}", file=sys.stderr)
        return 2
    print("\n".join(table + [""] + examples))
    if args.output:
        write_markdown(args.output, args, table, examples, notes)
        print(f"\n(written to {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
