#!/usr/bin/env python3
"""Lexically constrained DAG decoding on a test split: satisfaction, BLEU with and without, and speed cost.

    python scripts/evaluation/constraints_report.py --checkpoint runs/learning_curves/dat/averaged.pt
    # the committed record:
    python scripts/evaluation/constraints_report.py --checkpoint ... --output benchmarks/constraints_quickstart.md

Defaults are the quickstart's files (data-bin/quickstart, data/quickstart/{raw,tok}).  Steps:

1. ``constraints_eval.make``'s rule picks up to ``--phrases`` disjoint spans of 1..``--max-words`` words from
   each Moses-tokenized reference, in reference order (seed ``--seed``): the constraints a user with a
   terminology list would give, and which the reference itself satisfies.
2. ``fairseq-interactive`` translates the raw sources three ways, ``--reps`` times each in turn (so machine
   load falls on all of them alike): free joint-Viterbi (the constrained search without constraints: the
   speed baseline), constrained joint-Viterbi (``--constraints``), and free with the model's own
   ``--free-flags`` (the quickstart's lookahead, for the BLEU users get without constraints).
3. Satisfaction (``constraints_eval.check_outputs``; sentences whose constraints cannot fit the graph are
   counted apart), BLEU (``score.py``: tokenized BLEU on the ``H-`` lines against the tokenized references,
   sacreBLEU and chrF against the raw ones), and fairseq-interactive's own "translation time" (model time,
   no text processing), median over the repetitions.

Output: Markdown with a JSON beside it, under runs/ unless ``--output`` says otherwise; the decodings stay in
``--work-dir`` (runs/constraints/work).
"""
import argparse
import json
import os
import platform
import random
import re
import shlex
import statistics
import subprocess
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(_HERE))
sys.path[:0] = [p for p in (_HERE,) if p not in sys.path]

import constraints_eval  # noqa: E402  (scripts/evaluation/constraints_eval.py)
import score  # noqa: E402  (scripts/evaluation/score.py)

_TIME = re.compile(r"translation time: ([0-9.]+)")
CONSTRAINED = "constrained, joint-Viterbi"


class ReportError(Exception):
    """Unusable input: one line, exit 2."""


def read(path, limit=None):
    lines = score.read_lines(path)
    return lines[:limit] if limit else lines


def interactive(args, input_path, out_path, *extra):
    """One fairseq-interactive run; returns its translation time in seconds."""
    command = [sys.executable, "-m", "fairseq_cli.interactive", args.data_bin, "--user-dir",
               os.path.join(REPO_ROOT, "nat_plugins"), "--task", "nat_translation", "--path", args.checkpoint,
               "-s", args.source_lang, "-t", args.target_lang, "--input", input_path,
               "--buffer-size", str(args.batch_size), "--batch-size", str(args.batch_size), *args.text_args, *extra]
    if not args.cuda:
        command.append("--cpu")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    log_path = out_path + ".log"
    with open(out_path, "w", encoding="utf-8") as out, open(log_path, "w", encoding="utf-8") as log:
        status = subprocess.run(command, stdout=out, stderr=log, env=env, cwd=REPO_ROOT).returncode
    text = open(log_path, encoding="utf-8").read()
    if status != 0:
        raise ReportError(f"fairseq-interactive failed (exit {status}); its log: {log_path}: "
                          + (text.strip().splitlines() or ["(empty)"])[-1])
    found = _TIME.findall(text)
    if not found:
        raise ReportError(f"no 'translation time' line in {log_path}")
    return float(found[-1])


def _in_order_as_substrings(hypothesis, phrases):
    """Whether the phrases occur in order in the hypothesis text, word boundaries ignored."""
    at = 0
    for phrase in phrases:
        found = hypothesis.find(phrase, at)
        if found < 0:
            return False
        at = found + len(phrase)
    return True


def _slug(name):
    return re.sub(r"[^a-z]+", "_", name.lower()).strip("_")


def scores(args, out_path, refs, raw_refs):
    hyps_by_id = constraints_eval.output_lines(out_path, "H-")
    if len(hyps_by_id) != len(refs):
        raise ReportError(f"{out_path}: {len(hyps_by_id)} hypotheses for {len(refs)} references")
    hyps = [hyps_by_id[i] for i in range(len(refs))]
    return score.score_corpus(hyps, refs, lang=args.target_lang, tokenized=True, detok_refs=raw_refs)


def run(args):
    work = args.work_dir
    os.makedirs(work, exist_ok=True)
    sources = read(args.source, args.limit)
    refs = read(args.reference, args.limit)
    raw_refs = read(args.raw_reference, args.limit) if args.raw_reference else None
    if len(sources) != len(refs) or (raw_refs is not None and len(raw_refs) != len(refs)):
        raise ReportError("--source, --reference and --raw-reference must have the same number of lines")
    rng = random.Random(args.seed)
    constraints = [constraints_eval.pick_phrases(r.split(), args.phrases, args.max_words, rng) for r in refs]
    constrained_in, free_in = os.path.join(work, "constrained.in"), os.path.join(work, "free.in")
    with open(constrained_in, "w", encoding="utf-8") as f:
        f.writelines("\t".join([s.replace("\t", " ")] + c) + "\n" for s, c in zip(sources, constraints))
    with open(free_in, "w", encoding="utf-8") as f:
        f.writelines(s.replace("\t", " ") + "\n" for s in sources)

    viterbi = ["--decoding-strategy", "dag_joint_viterbi", "--decode-viterbi-beta", str(args.viterbi_beta)]
    systems = {  # name: (input, flags)
        "free, joint-Viterbi": (free_in, viterbi),
        CONSTRAINED: (constrained_in, viterbi + ["--constraints"]),
        "free, " + args.free_flags: (free_in, shlex.split(args.free_flags)),
    }
    outputs = {name: os.path.join(work, _slug(name) + ".out") for name in systems}
    times = {name: [] for name in systems}
    for rep in range(args.reps):
        for name, (path, flags) in systems.items():
            times[name].append(interactive(args, path, outputs[name], *flags))
            print(f"[constraints] repetition {rep + 1}/{args.reps}: {name}: {times[name][-1]:.2f} s", flush=True)
    # the constraints as fairseq-interactive printed them (C- lines of the constrained run), for every system
    constrained_out = outputs[CONSTRAINED]
    printed = constraints_eval.constraint_lines(constrained_out)
    rows, hyps = [], {}
    for name, out in outputs.items():
        hyps[name] = constraints_eval.output_lines(out, "H-")
        row = {"system": name, "seconds": round(statistics.median(times[name]), 3), "all_seconds": times[name],
               **{k: v for k, v in scores(args, out, refs, raw_refs).items() if k in ("bleu_tok", "sacrebleu", "chrf")}}
        # every system is checked against the constraints: the free ones show how often they hold anyway
        check = constraints_eval.check_outputs(constrained_in, out, out + ".log" if name == CONSTRAINED else None,
                                               printed_from=constrained_out)
        row.update({k: check[k] for k in ("with_constraints", "infeasible", "feasible_met", "satisfaction_rate")})
        row["unmet_ids"] = check["unmet_ids"][:20]
        # unmet only because a phrase's first word was joined to the word before it: the token before the
        # phrase ended in the BPE continuation marker, so removing the BPE glued them together
        row["unmet_joined_to_previous_word"] = sum(
            _in_order_as_substrings(hyps[name].get(i, ""), printed.get(i, [])) for i in check["unmet_ids"])
        rows.append(row)
    base = rows[0]["seconds"]
    for row in rows:
        row["time_vs_free_viterbi"] = round(row["seconds"] / base, 2) if base else None
    examples = [{"source": sources[i], "constraints": constraints[i], "reference": refs[i],
                 **{row["system"]: hyps[row["system"]].get(i, "") for row in rows}}
                for i in range(min(args.examples, len(sources)))]
    return {
        "command": " ".join([os.path.relpath(sys.argv[0], REPO_ROOT)] + sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "threads": args.threads, "checkpoint": args.checkpoint, "sentences": len(sources),
        "phrases": args.phrases, "max_words": args.max_words, "seed": args.seed, "reps": args.reps,
        "note": args.note, "rows": rows, "examples": examples,
    }


def markdown(result):
    lines = [
        "# Lexically constrained DAG decoding on the test split",
        "",
        f"- Command: `{result['command']}`",
        f"- Date: {result['date']}; machine: {result['machine']}; {result['threads']} torch thread(s)",
        f"- Checkpoint: `{result['checkpoint']}`; {result['sentences']} sentences",
        f"- Constraints: up to {result['phrases']} disjoint reference spans of 1-{result['max_words']} "
        f"tokens per sentence, in reference order (seed {result['seed']}); satisfaction is counted on the "
        "`H-` lines (tokenized, BPE removed), where every phrase must occur in order as whole tokens, in the form "
        "fairseq-interactive printed it (`C-` lines: Moses-tokenized like the input, e.g. `jdm.` becomes `jdm .`).",
        f"- Time: fairseq-interactive's translation time (model only), median of {result['reps']} "
        "repetitions run in turn.",
    ]
    if result["note"]:
        lines.append(f"- Note: {result['note']}")
    lines += ["", "| Decoding | Constraints met (feasible) | Infeasible | Unmet: phrase joined to the word before "
              "| BLEU (tok) | sacreBLEU | chrF | Time (s) | Time vs free joint-Viterbi |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        feasible = r["with_constraints"] - r["infeasible"]
        lines.append(f"| {r['system']} | {r['feasible_met']}/{feasible} ({r['satisfaction_rate']}%) | "
                     f"{r['infeasible'] if 'constrained' in r['system'] else '-'} | "
                     f"{r.get('unmet_joined_to_previous_word', '-')} | {r['bleu_tok']} | "
                     f"{r['sacrebleu']} | {r['chrf']} | {r['seconds']} | {r['time_vs_free_viterbi']}x |")
    lines += ["", "Free rows: how often the constraints hold without being asked for (infeasibility is only "
              "known for the constrained run).", "", "## Examples", ""]
    for ex in result["examples"]:
        lines.append(f"- **source:** {ex['source']}  \n  **constraints:** {' | '.join(ex['constraints']) or '-'}  \n"
                     f"  **reference:** {ex['reference']}")
        for r in result["rows"]:
            lines.append(f"  - {r['system']}: {ex[r['system']]}")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a DA-Transformer or DiffGLAT checkpoint")
    parser.add_argument("--data-bin", default="data-bin/quickstart")
    parser.add_argument("--source", default="data/quickstart/raw/test.en", help="raw source text")
    parser.add_argument("--reference", default="data/quickstart/tok/test.de",
                        help="references in the form of the H- lines (Moses-tokenized, no BPE)")
    parser.add_argument("--raw-reference", default="data/quickstart/raw/test.de",
                        help="raw references for sacreBLEU and chrF ('' to detokenize --reference)")
    parser.add_argument("-s", "--source-lang", default="en")
    parser.add_argument("-t", "--target-lang", default="de")
    parser.add_argument("--bpe-codes", default="data-bin/quickstart/bpecodes",
                        help="subword-nmt codes: Moses tokenization and BPE on the way in ('' for neither)")
    parser.add_argument("--limit", type=int, help="only the first N sentences")
    parser.add_argument("--phrases", type=int, default=2)
    parser.add_argument("--max-words", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--viterbi-beta", type=float, default=1.0)
    parser.add_argument("--free-flags", default="--decoding-strategy dag_lookahead --decode-beta 1.0",
                        help="decoding flags of the model's usual free decoding (the quickstart's lookahead)")
    parser.add_argument("--examples", type=int, default=5)
    parser.add_argument("--note", help="a remark recorded in the report (e.g. machine load)")
    parser.add_argument("--output", default="runs/constraints/constraints_report.md",
                        help="Markdown report; the JSON goes beside it")
    parser.add_argument("--work-dir", default="runs/constraints/work",
                        help="inputs, outputs and logs of the fairseq-interactive runs")
    args = parser.parse_args(argv)
    for what in ("checkpoint", "source", "reference"):
        if not os.path.isfile(getattr(args, what)):
            raise ReportError(f"--{what.replace('_', '-')} {getattr(args, what)}: no such file")
    if args.raw_reference and not os.path.isfile(args.raw_reference):
        raise ReportError(f"--raw-reference {args.raw_reference}: no such file")
    if not os.path.isdir(args.data_bin):
        raise ReportError(f"--data-bin {args.data_bin}: no such directory")
    if args.reps < 1 or args.threads < 1 or args.phrases < 1 or args.max_words < 1:
        raise ReportError("--reps, --threads, --phrases and --max-words must be positive")
    args.text_args = ["--remove-bpe"]
    if args.bpe_codes:
        args.text_args = ["--tokenizer", "moses", "--moses-no-escape", "--bpe", "subword_nmt",
                          "--bpe-codes", args.bpe_codes, "--remove-bpe"]
    import torch

    args.cuda = torch.cuda.is_available()
    return args


def main(argv=None):
    try:
        args = parse_args(argv)
        result = run(args)
    except (ReportError, score.ScoreError) as error:
        print(f"constraints_report.py: error: {error}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(markdown(result))
    with open(os.path.splitext(args.output)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    for row in result["rows"]:
        print(f"[constraints] {row['system']}: met {row['feasible_met']}/{row['with_constraints'] - row['infeasible']}"
              f", BLEU {row['bleu_tok']}, {row['seconds']} s")
    print(f"[constraints] report: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
