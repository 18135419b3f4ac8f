#!/usr/bin/env python3
"""Lexically constrained decoding, evaluated: build constraint inputs from references, check the outputs.

    # 1. one to N reference spans per sentence become ordered constraints (tab-separated, fairseq's format)
    python scripts/evaluation/constraints_eval.py make --source test.en --reference test.de --phrases 2 --max-words 2 \\
        --seed 1 > constrained.in
    # 2. decode with and without them (a DA-Transformer or DiffGLAT checkpoint)
    fairseq-interactive DATA --user-dir nat_plugins --task nat_translation --path dat.pt --constraints \\
        --input constrained.in [--tokenizer moses --bpe ...] > constrained.out
    cut -f1 constrained.in | fairseq-interactive DATA ... --path dat.pt > free.out
    # 3. how many sentences carry every phrase, in order
    python scripts/evaluation/constraints_eval.py check --input constrained.in --output constrained.out
    # 4. cost of the exact DP against unconstrained joint-Viterbi (random graphs, PyTorch reference)
    python scripts/evaluation/constraints_eval.py bench --batch 32 --vertices 240 --tokens 2 4 8

Phrases and hypotheses are compared as whitespace tokens of the ``H-`` lines (after fairseq's
``--post-process``), so give the reference in the form the hypotheses are printed in.  Sentences for
which the generator warned "do not fit its graph" are the infeasible ones: pass the decoding log (stderr)
with ``--log`` to count them apart (their output is the free translation; the warning names the source text,
matched to the ``S-`` lines).  BLEU: ``scripts/evaluation/score.py`` on
both outputs.
"""
import argparse
import json
import random
import re
import sys

__all__ = ["pick_phrases", "contains_in_order", "output_lines", "constraint_lines", "check_outputs", "main"]


def pick_phrases(words, count, max_words, rng):
    """Up to ``count`` disjoint spans of 1..``max_words`` words of ``words``, in sentence order."""
    spans, taken = [], set()
    for _ in range(count * 4):
        if len(spans) == count or not words:
            break
        n = rng.randint(1, max(1, min(max_words, len(words))))
        start = rng.randrange(0, len(words) - n + 1)
        cells = set(range(start, start + n))
        if cells & taken:
            continue
        taken |= cells
        spans.append((start, " ".join(words[start:start + n])))
    return [text for _, text in sorted(spans)]


def contains_in_order(hypothesis, phrases):
    """Whether every phrase occurs as consecutive tokens of ``hypothesis``, each after the previous one."""
    words, at = hypothesis.split(), 0
    for phrase in phrases:
        p = phrase.split()
        while at + len(p) <= len(words) and words[at:at + len(p)] != p:
            at += 1
        if at + len(p) > len(words):
            return False
        at += len(p)
    return True


def output_lines(path, prefix):
    """{id: last field} of the ``prefix`` lines (``H-``, ``S-``) of fairseq output."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(prefix):
                fields = line.rstrip("\n").split("\t")
                out[int(fields[0][len(prefix):])] = fields[-1] if len(fields) > 1 else ""
    return out


def constraint_lines(path):
    """{id: [phrase, ...]} of the ``C-`` lines of fairseq-interactive output: the constraints as the model got
    them (tokenized, BPE removed), so they compare with the ``H-`` lines; e.g. ``jdm.`` becomes ``jdm .``."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("C-"):
                head, _, text = line.rstrip("\n").partition("\t")
                out.setdefault(int(head[2:]), []).append(text)
    return out


def _norm(text):
    return " ".join(text.replace("@@ ", "").split())


def cmd_make(args):
    rng = random.Random(args.seed)
    with open(args.source, encoding="utf-8") as fs, open(args.reference, encoding="utf-8") as fr:
        for src, ref in zip(fs, fr):
            phrases = pick_phrases(ref.split(), args.phrases, args.max_words, rng)
            sys.stdout.write("\t".join([src.rstrip("\n").replace("\t", " ")] + phrases) + "\n")
    return 0


def check_outputs(input_path, output_path, log_path=None, printed_from=None):
    """Satisfaction counts of a constrained fairseq-interactive run (see the module docstring).

    The phrases are those of ``input_path``, or, where ``printed_from`` (a constrained run's output, by default
    ``output_path``) has ``C-`` lines, those: the form the model was asked to emit."""
    with open(input_path, encoding="utf-8") as f:
        constraints = [line.rstrip("\n").split("\t")[1:] for line in f]
    for i, phrases in constraint_lines(printed_from or output_path).items():
        if i < len(constraints):
            constraints[i] = phrases
    hyps = output_lines(output_path, "H-")
    infeasible = set()
    if log_path:
        # the generator's warning ends with the source text; fairseq-interactive's S- lines give its id
        with open(log_path, encoding="utf-8") as f:
            warned = [_norm(m) for m in re.findall(r"do not fit its graph.*?; source: (.*)", f.read())]
        by_source = {}
        for i, text in output_lines(output_path, "S-").items():
            by_source.setdefault(_norm(text), []).append(i)
        for text in warned:
            if by_source.get(text):
                infeasible.add(by_source[text].pop(0))
    with_c = [i for i, c in enumerate(constraints) if c]
    feasible = [i for i in with_c if i not in infeasible]
    met = [i for i in feasible if contains_in_order(hyps.get(i, ""), constraints[i])]
    return {
        "sentences": len(constraints), "with_constraints": len(with_c), "infeasible": len(with_c) - len(feasible),
        "feasible_met": len(met), "satisfaction_rate": round(100.0 * len(met) / max(1, len(feasible)), 2),
        "missing_hypotheses": len([i for i in range(len(constraints)) if i not in hyps]),
        "unmet_ids": [i for i in feasible if i not in met],
    }


def cmd_check(args):
    result = check_outputs(args.input, args.output, args.log)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


def cmd_bench(args):
    """Constrained vs unconstrained joint-Viterbi (PyTorch reference) on random graphs, best of 3."""
    import time

    import torch

    from nat_plugins.ops import dag_viterbi
    from nat_plugins.ops.dag_constrained_torch import dag_constrained_viterbi

    torch.manual_seed(0)
    B, P = args.batch, args.vertices
    links = torch.randn(B, P, P).log_softmax(-1)
    tok = torch.randn(B, P)
    lengths = torch.full((B,), P)

    def best(fn):
        fn()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    base = best(lambda: dag_viterbi(links, tok, lengths, impl="torch", length_norm="transitions"))
    rows = [{"constraint_tokens": 0, "seconds": round(base, 4), "ratio": 1.0}]
    for C in args.tokens:
        con = torch.randn(B, C, P) - 2
        end = torch.zeros(B, C, dtype=torch.bool)
        end[:, C - 1] = True
        end[:, max(0, C // 2 - 1)] = True  # two phrases
        t = best(lambda: dag_constrained_viterbi(links, tok, con, end, torch.full((B,), C), lengths,
                                                 length_norm="transitions"))
        rows.append({"constraint_tokens": C, "seconds": round(t, 4), "ratio": round(t / base, 2)})
    print(json.dumps({"batch": B, "vertices": P, "threads": torch.get_num_threads(), "rows": rows}))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make", help="source + reference -> fairseq-interactive input with constraints")
    make.add_argument("--source", required=True)
    make.add_argument("--reference", required=True)
    make.add_argument("--phrases", type=int, default=1, help="constraint phrases per sentence (at most)")
    make.add_argument("--max-words", type=int, default=2, help="words per phrase (at most)")
    make.add_argument("--seed", type=int, default=1)
    check = sub.add_parser("check", help="satisfaction rate of fairseq-interactive output")
    check.add_argument("--input", required=True, help="the constrained input file (from 'make')")
    check.add_argument("--output", required=True, help="fairseq-interactive stdout")
    check.add_argument("--log", help="fairseq-interactive stderr (marks the infeasible sentences)")
    check.add_argument("--json", action="store_true")
    bench = sub.add_parser("bench", help="time the constrained joint-Viterbi op against the unconstrained one")
    bench.add_argument("--batch", type=int, default=32)
    bench.add_argument("--vertices", type=int, default=240)
    bench.add_argument("--tokens", type=int, nargs="+", default=[2, 4, 8])
    args = parser.parse_args(argv)
    return {"make": cmd_make, "check": cmd_check, "bench": cmd_bench}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
