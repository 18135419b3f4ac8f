#!/usr/bin/env python3
"""The synthetic multimodality task of DiffGLAT (Qian et al.), §2.2 and Appendix A.

Every source is a sequence of integers drawn uniformly from ``1..N``; its
target is the source shifted by an offset that depends on the position's
parity and on ONE modality picked uniformly at random per pair (Table 1,
positions ``i`` 1-based)::

    I    odd i -> x + N,   even i -> x + 2N
    II   odd i -> x + 2N,  even i -> x + N
    III  odd i -> x + 3N,  even i -> x + 4N
    IV   odd i -> x + 4N,  even i -> x + 3N

A model that decides each position independently (vanilla NAT) mixes the
modalities inside one output; Table 2 measures this with token and sequence
accuracy against the CLOSEST of the four possible targets.

Subcommands:

* ``make-data``: writes ``{train,valid,test}.{src,tgt}`` (plus
  ``{split}.modality``, the modality of each pair, ``{split}.candidates``,
  ``meta.json`` and the full dictionary ``dict.txt``) and binarizes them with
  ``fairseq-preprocess --joined-dictionary``.  Deterministic given
  ``--seed``; each split has its own random stream, so the test split does
  not change with ``--train`` or ``--scale``.  Cached: a second call with
  the same settings does nothing.
* ``evaluate``: scores ``fairseq-generate`` output (or ``--hyp FILE``)
  against the four candidate targets of each test source.
* ``candidates``: writes the ``{split}.candidates`` files a data folder made
  before they existed lacks (nothing else is touched, nothing is rebinarized).

``{split}.candidates`` holds, on line ``n``, every possible target of source
line ``n`` (all K modalities, in the order I, II, III, IV), separated by a tab;
one file rather than K keeps the candidates of a source on one line, aligned
with ``{split}.src`` like every other file here.  The validation loss of the
reproduction suite (``scripts/evaluation/min_candidate_loss.py``) reads it.

The reproduction suite (``scripts/experiments/reproduce.py``, ``make reproduce``) drives
both and writes the report.

Our extensions, for controlled experiments (the paper always uses four):

* ``--modalities K`` uses only the first K modalities of Table 1 (the ``easy``
  preset uses I and II); evaluation then compares with those K candidates only.
* ``{split}.merged`` holds each pair's target with modalities merged as
  progressive modality learning trains its middle layer (Appendix A: I -> II,
  III -> IV), for the ``pml_loss`` criterion.

Choices (the paper does not say):

* The dictionary is written here and holds every symbol ``1..5N`` (passed
  to fairseq-preprocess as ``--srcdict``), so a small training split never
  leaves a test target token out of the vocabulary.
* Token accuracy is pooled over the corpus: for each output, the closest
  target is the candidate with the most position-wise matches (ties go to
  the first in the order I, II, III, IV); the matches count as correct and
  the denominator is ``max(len(output), len(closest target))``, so missing
  and extra positions both count as wrong.  An output with no match at all
  is attributed to modality I, like every other tie.
* The paper's 100k/5k/5k pairs and N = 5000 are the defaults; ``--scale``
  multiplies the three split sizes (CPU runs use it with a smaller
  ``--num-tokens``).
"""
import argparse
import datetime
import json
import os
import random
import sys

# The job folders this tool borrows from go on sys.path whether it is run or imported (from any cwd).
SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [p for p in (os.path.join(SCRIPTS, d) for d in ("data", "evaluation", "experiments")) if p not in sys.path]
if os.path.dirname(SCRIPTS) not in sys.path:  # a checkout without the editable install
    sys.path.append(os.path.dirname(SCRIPTS))

import prepare_data  # noqa: E402  (scripts/data/prepare_data.py: binarization and step caching)
import quickstart_report  # noqa: E402  (scripts/experiments/: machine description, training-log parsing)
import score  # noqa: E402  (scripts/evaluation/: fairseq-generate output parsing)
import text_files  # noqa: E402

from nat_plugins.errors import NATUserError  # noqa: E402

MODALITIES = ("I", "II", "III", "IV")
#: Target offset, in multiples of N, at (odd, even) 1-based positions (Table 1).
OFFSETS = {"I": (1, 2), "II": (2, 1), "III": (3, 4), "IV": (4, 3)}
SPLITS = ("train", "valid", "test")
PAPER_SIZES = {"train": 100000, "valid": 5000, "test": 5000}
SRC, TGT = "src", "tgt"
FORMAT_VERSION = 1

#: Table 2 of the paper: (row name, token accuracy, sequence accuracy).
PAPER_RESULTS = {
    "ar": ("AR", 100.0, 100.0),
    "vanilla": ("vanilla NAR", 56.6, 0.0),
    "pml": ("NAR w/ progressive modality learning (middle layer)", 98.8, 93.4),
}


def read_lines(path):
    return text_files.read_lines(path, NATUserError)


# --------------------------------------------------------------------------
# The data (Table 1)
# --------------------------------------------------------------------------


def modality_target(source, modality, num_tokens):
    """The target of ``source`` (list of ints) under ``modality`` ("I".."IV")."""
    odd, even = OFFSETS[modality]
    # index 0 is position 1 (odd)
    return [x + (odd if i % 2 == 0 else even) * num_tokens for i, x in enumerate(source)]


#: Progressive modality learning's merge (Appendix A): the middle layer learns II and IV only.
MERGED_MODALITY = {"I": "II", "II": "II", "III": "IV", "IV": "IV"}


def candidate_targets(source, num_tokens, modalities=4):
    """The possible targets of ``source``: the first ``modalities`` of I, II, III, IV, in that order."""
    return [modality_target(source, m, num_tokens) for m in MODALITIES[:modalities]]


def make_pairs(count, length, num_tokens, rng, modalities=4):
    """``count`` pairs ``(source, modality, target)``; ``rng`` is a ``random.Random``.

    The modality is uniform over the first ``modalities`` of Table 1.  With 4 the
    random stream is the one of earlier versions, so existing data sets are unchanged.
    """
    pairs = []
    for _ in range(count):
        source = [rng.randint(1, num_tokens) for _ in range(length)]
        modality = MODALITIES[rng.randrange(modalities)]
        pairs.append((source, modality, modality_target(source, modality, num_tokens)))
    return pairs


def split_sizes(train, valid, test, scale):
    sizes = {}
    for split, size in (("train", train), ("valid", valid), ("test", test)):
        sizes[split] = max(1, round(size * scale))
    return sizes


def split_rng(seed, split):
    # one stream per split: the test set does not depend on the train size
    return random.Random(seed * len(SPLITS) + SPLITS.index(split))


def _join(tokens):
    return " ".join(str(t) for t in tokens)


def write_raw(raw_dir, sizes, length, num_tokens, seed, modalities=4):
    """Write the raw splits and ``dict.txt`` (the caller writes ``meta.json`` after them: it marks completion)."""
    os.makedirs(raw_dir, exist_ok=True)
    counts = [0] * (5 * num_tokens + 1)
    for split in SPLITS:
        pairs = make_pairs(sizes[split], length, num_tokens, split_rng(seed, split), modalities)
        prepare_data.write_lines_atomically(os.path.join(raw_dir, f"{split}.{SRC}"), [_join(s) for s, _, _ in pairs])
        prepare_data.write_lines_atomically(os.path.join(raw_dir, f"{split}.{TGT}"), [_join(t) for _, _, t in pairs])
        prepare_data.write_lines_atomically(os.path.join(raw_dir, f"{split}.modality"), [m for _, m, _ in pairs])
        prepare_data.write_lines_atomically(
            os.path.join(raw_dir, f"{split}.merged"),
            [_join(modality_target(s, MERGED_MODALITY[m], num_tokens)) for s, m, _ in pairs])
        if split == "train":
            for source, _, target in pairs:
                for token in source + target:
                    counts[token] += 1
    # Every symbol, train counts beside it (fairseq's dictionary format).
    prepare_data.write_lines_atomically(
        os.path.join(raw_dir, "dict.txt"), [f"{token} {counts[token]}" for token in range(1, 5 * num_tokens + 1)]
    )


CANDIDATES = "candidates"


def write_candidates(raw_dir, num_tokens, modalities=4, splits=SPLITS):
    """Write ``{split}.candidates`` beside each split's sources unless it is at least as new as them.

    Derived from the written sources, not from the random stream, so it can be added to data made
    earlier; binarization does not read it, so adding it never invalidates the binarized data.
    """
    for split in splits:
        source_path = os.path.join(raw_dir, f"{split}.{SRC}")
        path = os.path.join(raw_dir, f"{split}.{CANDIDATES}")
        if os.path.exists(path) and os.path.getmtime(path) >= os.path.getmtime(source_path):
            continue
        lines = []
        for number, line in enumerate(read_lines(source_path), 1):
            targets = candidate_targets(parse_source(line, number), num_tokens, modalities)
            lines.append("\t".join(_join(target) for target in targets))
        prepare_data.write_lines_atomically(path, lines)


def load_meta(raw_dir):
    path = os.path.join(raw_dir, "meta.json")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise NATUserError(f"{path} is missing: make the data with 'synthetic_multimodality.py make-data'") from exc
    except ValueError as exc:
        raise NATUserError(f"{path} is not valid JSON: {exc}") from exc


def make_data(args):
    if args.num_tokens < 1 or args.length < 1:
        raise NATUserError("--num-tokens and --length must be positive")
    if not 1 <= args.modalities <= len(MODALITIES):
        raise NATUserError(f"--modalities must be 1..{len(MODALITIES)}, got {args.modalities}")
    if args.scale <= 0 or min(args.train, args.valid, args.test) < 1:
        raise NATUserError("--scale and the split sizes must be positive")
    sizes = split_sizes(args.train, args.valid, args.test, args.scale)
    meta = {
        "format_version": FORMAT_VERSION, "num_tokens": args.num_tokens, "length": args.length,
        "seed": args.seed, "sizes": sizes, "languages": [SRC, TGT],
    }
    if args.modalities != len(MODALITIES):  # absent = 4, so data made before the option stays cached
        meta["modalities"] = args.modalities
    raw_files = [os.path.join(args.raw_dir, f"{split}.{ext}")
                 for split in SPLITS for ext in (SRC, TGT, "modality", "merged")]
    raw_files.append(os.path.join(args.raw_dir, "dict.txt"))
    try:
        current = load_meta(args.raw_dir)
    except NATUserError:
        current = None
    if current == meta and all(os.path.exists(path) for path in raw_files) and not args.force:
        prepare_data.log(f"raw data: {args.raw_dir} up to date, kept")
    else:
        prepare_data.log(f"raw data: writing {sizes} pairs of length {args.length}, N = {args.num_tokens}")
        meta_path = os.path.join(args.raw_dir, "meta.json")
        if os.path.exists(meta_path):
            os.remove(meta_path)
        write_raw(args.raw_dir, sizes, args.length, args.num_tokens, args.seed, args.modalities)
        with open(meta_path, "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=1, sort_keys=True)
    write_candidates(args.raw_dir, args.num_tokens, args.modalities)
    if args.dest_dir:
        prepare_data.run_step(
            "binarize", raw_files + [os.path.join(args.raw_dir, "meta.json")],
            prepare_data.binarized_outputs(args.dest_dir, SRC, TGT, SPLITS), meta,
            lambda: prepare_data.binarize(
                args.raw_dir, args.dest_dir, SRC, TGT, SPLITS, args.workers,
                srcdict=os.path.join(args.raw_dir, "dict.txt"), quiet=args.quiet,
            ),
            force=args.force,
        )
    return 0


# --------------------------------------------------------------------------
# Evaluation against the closest target (Appendix A, "Evaluation")
# --------------------------------------------------------------------------


def closest_target(hypothesis, candidates):
    """``(index, matches)`` of the candidate with the most position-wise
    matches with ``hypothesis`` (token lists); ties go to the first."""
    best, best_matches = 0, -1
    for index, candidate in enumerate(candidates):
        matches = sum(h == c for h, c in zip(hypothesis, candidate))
        if matches > best_matches:
            best, best_matches = index, matches
    return best, best_matches


def parse_source(line, number):
    """The integers of source line ``number`` (1-based, for the message)."""
    try:
        return [int(token) for token in line.split()]
    except ValueError as exc:
        raise NATUserError(f"source line {number} is not a sequence of integers: {line[:60]!r}") from exc


def evaluate(hypotheses, sources, num_tokens, modalities=4):
    """Token/sequence accuracy against the closest of the ``modalities`` targets (four in the paper).

    ``hypotheses``, ``sources``: one whitespace-tokenized string per
    sentence.  Tokens are compared as strings, so ``<unk>`` or any non-number
    simply never matches.  Returns a JSON-ready dict (percentages).
    """
    if len(hypotheses) != len(sources):
        raise NATUserError(f"{len(hypotheses)} hypotheses for {len(sources)} sources")
    if not sources:
        raise NATUserError("no sentences to evaluate")
    correct = total = exact = any_correct = mixed = used = 0
    share = dict.fromkeys(MODALITIES[:modalities], 0)
    for number, (hyp_line, src_line) in enumerate(zip(hypotheses, sources), 1):
        source = parse_source(src_line, number)
        candidates = [[str(t) for t in target] for target in candidate_targets(source, num_tokens, modalities)]
        hypothesis = hyp_line.split()
        index, matches = closest_target(hypothesis, candidates)
        correct += matches
        total += max(len(hypothesis), len(candidates[index]))
        exact += hypothesis == candidates[index]
        share[MODALITIES[index]] += 1
        # the modalities the output's right tokens come from (a position's tokens differ between modalities)
        fits = [{m for m, c in enumerate(candidates) if i < len(c) and c[i] == token}
                for i, token in enumerate(hypothesis)]
        any_correct += sum(bool(f) for f in fits)
        sources_used = set().union(*fits) if fits else set()
        used += len(sources_used)
        mixed += len(sources_used) > 1
    n = len(sources)
    return {
        "sentences": n,
        "token_accuracy": round(100.0 * correct / max(total, 1), 2),
        "sequence_accuracy": round(100.0 * exact / n, 2),
        "closest_modality_share": {m: round(100.0 * c / n, 2) for m, c in share.items()},
        # Diagnostics (ours): does a wrong output mix modalities, or is it wrong outright?  Tokens right under
        # *some* modality, over the same denominator as token_accuracy; outputs whose right tokens come from
        # more than one modality; and the mean number of modalities an output draws from.
        "any_modality_token_accuracy": round(100.0 * any_correct / max(total, 1), 2),
        "mixed_modality_outputs": round(100.0 * mixed / n, 2),
        "modalities_per_output": round(used / n, 3),
    }


def check_references(refs, sources, num_tokens, path, modalities=4):
    """fairseq-generate's T- lines must be candidate targets of the sources:
    otherwise the output belongs to another data set."""
    for number, (ref, src) in enumerate(zip(refs, sources)):
        candidates = candidate_targets(parse_source(src, number + 1), num_tokens, modalities)
        if ref.split() not in [[str(t) for t in c] for c in candidates]:
            raise NATUserError(
                f"{path}: reference of sentence {number} is no modality of test source {number}: "
                "is --raw-dir the data this output was generated from?"
            )


def load_for_evaluation(args):
    meta = load_meta(args.raw_dir) if args.raw_dir else {}
    num_tokens = args.num_tokens or meta.get("num_tokens")
    modalities = int(meta.get("modalities", len(MODALITIES)))
    if not num_tokens:
        raise NATUserError("give --raw-dir (with meta.json) or --num-tokens")
    source_path = args.source or (os.path.join(args.raw_dir, f"{args.split}.{SRC}") if args.raw_dir else None)
    if not source_path:
        raise NATUserError("give --raw-dir or --source FILE")
    sources = read_lines(source_path)
    if args.hyp:
        return read_lines(args.hyp), sources, num_tokens, modalities
    try:
        ids, hyps, refs = score.read_generate_output(args.generate_output)
    except score.ScoreError as exc:
        raise NATUserError(str(exc)) from exc
    if ids != list(range(len(sources))):
        raise NATUserError(
            f"{args.generate_output} holds {len(ids)} hypotheses (ids {ids[0]}..{ids[-1]}) for {len(sources)} "
            f"sources in {source_path}: generate the whole split with --required-batch-size-multiple 1"
        )
    if refs is not None:
        check_references(refs, sources, num_tokens, args.generate_output, modalities)
    return hyps, sources, num_tokens, modalities


def run_candidates(args):
    meta = load_meta(args.raw_dir)
    write_candidates(args.raw_dir, int(meta["num_tokens"]), int(meta.get("modalities", len(MODALITIES))))
    return 0


def format_evaluation(result):
    shares = " ".join(f"{m} {v:.1f}" for m, v in result["closest_modality_share"].items())
    return "\n".join([
        f"sentences: {result['sentences']}",
        f"token accuracy (closest target): {result['token_accuracy']:.2f}",
        f"sequence accuracy (closest target): {result['sequence_accuracy']:.2f}",
        f"closest modality share (%): {shares}",
        f"tokens right under some modality: {result['any_modality_token_accuracy']:.2f}; outputs mixing "
        f"modalities: {result['mixed_modality_outputs']:.2f}%; modalities per output: {result['modalities_per_output']}",
    ])


def run_evaluate(args):
    result = evaluate(*load_for_evaluation(args))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(result, handle)
    print(json.dumps(result) if args.json else format_evaluation(result))
    return 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="DiffGLAT's synthetic multimodality task (Appendix A): data, closest-target evaluation, report.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="subcommand", required=True)

    make = sub.add_parser("make-data", help="write the raw splits and binarize them",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    make.add_argument("--raw-dir", required=True, help="where {train,valid,test}.{src,tgt,modality} go")
    make.add_argument("--dest-dir", help="fairseq-preprocess output folder (omit to skip binarization)")
    make.add_argument("--num-tokens", type=int, default=5000, help="N: source tokens are 1..N")
    make.add_argument("--length", type=int, default=32, help="source (= target) length")
    make.add_argument("--train", type=int, default=PAPER_SIZES["train"], help="training pairs (before --scale)")
    make.add_argument("--valid", type=int, default=PAPER_SIZES["valid"], help="validation pairs (before --scale)")
    make.add_argument("--test", type=int, default=PAPER_SIZES["test"], help="test pairs (before --scale)")
    make.add_argument("--scale", type=float, default=1.0, help="multiplies the three split sizes (e.g. 0.1 on CPU)")
    make.add_argument("--modalities", type=int, default=4,
                      help="use the first K modalities of Table 1 (ours; the paper: 4)")
    make.add_argument("--seed", type=int, default=1)
    make.add_argument("--workers", type=int, default=1, help="fairseq-preprocess workers")
    make.add_argument("--force", action="store_true", help="rewrite and rebinarize even when up to date")
    make.add_argument("--quiet", action="store_true", help="hide fairseq-preprocess output unless it fails")

    ev = sub.add_parser(
        "evaluate", help="token/sequence accuracy against the closest of the four targets",
        description="Each output is compared with the closest of its source's four targets (most position-wise "
        "matches; ties go to the first of I, II, III, IV). Token accuracy = matches / max(output length, target "
        "length), pooled over the corpus, so missing and extra positions count as wrong; sequence accuracy = "
        "exact matches. Also reports the share of outputs per closest modality (the paper's Figure 2).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ev.add_argument("generate_output", nargs="?", help="fairseq-generate output (H- lines; T- lines are checked)")
    ev.add_argument("--hyp", help="hypothesis file instead, one output per line in test order")
    ev.add_argument("--raw-dir", help="data folder of make-data (sources and N)")
    ev.add_argument("--split", default="test", help="split whose sources are read from --raw-dir")
    ev.add_argument("--source", help="source file (overrides --raw-dir)")
    ev.add_argument("--num-tokens", type=int, help="N (overrides --raw-dir's meta.json)")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of a line per metric")
    ev.add_argument("--json-out", metavar="FILE", help="also write the JSON object to FILE")

    cand = sub.add_parser("candidates", help="add the {split}.candidates files to a data folder made without them",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    cand.add_argument("--raw-dir", required=True, help="data folder of make-data (sources and meta.json)")

    args = parser.parse_args(argv)
    if args.subcommand == "evaluate" and bool(args.generate_output) == bool(args.hyp):
        parser.error("give either a fairseq-generate output file or --hyp FILE")
    return args


def main(argv=None):
    args = parse_args(argv)
    action = {"make-data": make_data, "evaluate": run_evaluate, "candidates": run_candidates}[args.subcommand]
    try:
        return action(args)
    except (NATUserError, prepare_data.PrepareError) as error:
        print(f"synthetic_multimodality.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
