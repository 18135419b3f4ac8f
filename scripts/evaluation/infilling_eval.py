#!/usr/bin/env python3
"""Infilling accuracy on held-out spans: template files from references, token accuracy of the filled spans.

    # 1. hide one span of 1..W reference tokens per sentence (fixed width: <blank> per hidden token)
    python scripts/evaluation/infilling_eval.py make --reference test.tok.de --max-width 3 --seed 1 > templates.txt
    # 2. infill with any model whose strategy takes templates (SUNMASK, SUNDAE, CMLM)
    fairseq-generate DATA --user-dir nat_plugins --task nat_translation --path model.pt --gen-subset test \\
        --decode-templates templates.txt > infill.out
    # 3. share of hidden tokens the model restored, and exact spans
    python scripts/evaluation/infilling_eval.py check --templates templates.txt --reference test.tok.de --output infill.out

The references must be tokenized (and BPE'd) as the binarized data is, since the templates are read token by
token, and fairseq-generate must then run without ``--remove-bpe``: the ``H-`` lines are compared with the
references position by position, which fixed-width templates make possible.
"""
import argparse
import json
import random
import sys

from constraints_eval import output_lines

__all__ = ["hide_span", "span_accuracy", "main"]


def hide_span(words, max_width, rng):
    """``(template, start, width)``: one span of 1..``max_width`` words replaced by ``<blank>`` each."""
    if not words:
        return "", 0, 0
    width = rng.randint(1, max(1, min(max_width, len(words))))
    start = rng.randrange(0, len(words) - width + 1)
    template = words[:start] + ["<blank>"] * width + words[start + width:]
    return " ".join(template), start, width


def span_accuracy(template, reference, hypothesis):
    """``(hidden, correct, fixed_kept, same_width)`` for one sentence."""
    t, r, h = template.split(), reference.split(), hypothesis.split()
    hidden = [i for i, w in enumerate(t) if w == "<blank>"]
    correct = sum(1 for i in hidden if i < len(h) and h[i] == r[i])
    fixed_kept = all(i < len(h) and h[i] == w for i, w in enumerate(t) if w != "<blank>")
    return len(hidden), correct, fixed_kept, len(h) == len(t)


def cmd_make(args):
    rng = random.Random(args.seed)
    with open(args.reference, encoding="utf-8") as f:
        for line in f:
            sys.stdout.write(hide_span(line.split(), args.max_width, rng)[0] + "\n")
    return 0


def cmd_check(args):
    with open(args.templates, encoding="utf-8") as f:
        templates = [line.rstrip("\n") for line in f]
    with open(args.reference, encoding="utf-8") as f:
        references = [line.rstrip("\n") for line in f]
    hyps = output_lines(args.output, "H-")
    hidden = correct = spans = exact = kept = widths = 0
    for i, (t, r) in enumerate(zip(templates, references)):
        if i not in hyps or "<blank>" not in t:
            continue
        n, c, fixed_ok, width_ok = span_accuracy(t, r, hyps[i])
        hidden, correct, spans = hidden + n, correct + c, spans + 1
        exact += int(n == c)
        kept += int(fixed_ok)
        widths += int(width_ok)
    result = {"sentences": spans, "hidden_tokens": hidden,
              "token_accuracy": round(100.0 * correct / max(1, hidden), 2),
              "exact_spans": round(100.0 * exact / max(1, spans), 2),
              "fixed_tokens_kept": round(100.0 * kept / max(1, spans), 2),
              "width_kept": round(100.0 * widths / max(1, spans), 2)}
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make", help="references -> a --decode-templates file with one hidden span per line")
    make.add_argument("--reference", required=True)
    make.add_argument("--max-width", type=int, default=3)
    make.add_argument("--seed", type=int, default=1)
    check = sub.add_parser("check", help="token accuracy of the infilled spans")
    check.add_argument("--templates", required=True)
    check.add_argument("--reference", required=True)
    check.add_argument("--output", required=True, help="fairseq-generate output")
    check.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return cmd_make(args) if args.command == "make" else cmd_check(args)


if __name__ == "__main__":
    sys.exit(main())
