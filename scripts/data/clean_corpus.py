#!/usr/bin/env python3
r"""Drop parallel sentence pairs by length and length ratio (Moses ``clean-corpus-n``).

The rule of Moses' ``clean-corpus-n.perl`` as used by the usual WMT14
En-De preparation (``-ratio 1.5``, lengths 1 to 250): a pair is kept when
both sides have between ``--min-len`` and ``--max-len`` tokens and neither
side is more than ``--ratio`` times as long as the other.

Lengths are counted in Moses tokens, using exactly the normalisation and
tokenization of ``scripts/data/prepare_data.py`` (:func:`prepare_data.moses_tokenizer`),
but the pairs written out are the *untokenized* input lines.  That way the
cleaned corpus is still raw text that ``prepare_data.py`` tokenizes,
BPE-encodes and binarizes with its own caching, and the lengths checked here
are the lengths it will produce.  (fairseq's ``prepare-wmt14en2de.sh``
cleans after BPE instead, counting subwords; counting words is the
original Moses practice and is what the recipes document.)

Lines are split on ``\n`` only (what ``wc -l`` counts), and any other
character that Python's ``str.splitlines`` treats as a line break
(``\r``, ``\x0b``, ``\x0c``, ``\x1c``-``\x1e``, ``\x85``, ``\u2028``,
``\u2029``, all found in web-crawled text) is replaced by a space in the
output: tools that read files with ``splitlines`` or universal newlines
would otherwise see one side of the corpus grow by a line and misalign every
pair after it (this repository's own readers, ``scripts/data/text_files.py``,
split at ``\n`` only).
Bytes that are not UTF-8 become U+FFFD.

The tokenization runs in ``--workers`` processes; the output is written
atomically (temporary file, then rename), so an interrupted run never
leaves a truncated corpus behind.
"""
import argparse
import json
import multiprocessing
import os
import sys

import prepare_data  # beside this script (its folder is on sys.path whether run or imported)

_TOKENIZERS = {}
#: Everything str.splitlines() splits on, except "\n" itself.
_LINE_BREAKS = str.maketrans({c: " " for c in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


class CleanError(ValueError):
    """Unusable input (missing files, sides of different lengths)."""


def read_corpus_lines(path):
    """Lines of ``path`` split on ``\\n`` only, other line-break characters made spaces."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as handle:
            text = handle.read()
    except OSError as error:
        raise CleanError(f"cannot read {path}: {error.strerror or error}") from error
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start a new one
    return [line.translate(_LINE_BREAKS) for line in lines]


def pair_verdict(src_len, tgt_len, ratio, min_len, max_len):
    """Why a pair of token counts is dropped (``"length"``, ``"ratio"``) or ``None`` to keep it.

    Bounds are inclusive, as in clean-corpus-n; a side of 0 tokens is always
    dropped as ``"length"`` (``min_len`` >= 1).
    """
    if not (min_len <= src_len <= max_len and min_len <= tgt_len <= max_len):
        return "length"
    if src_len > ratio * tgt_len or tgt_len > ratio * src_len:
        return "ratio"
    return None


def _init_worker(src_lang, tgt_lang):
    _TOKENIZERS["src"] = prepare_data.moses_tokenizer(src_lang)
    _TOKENIZERS["tgt"] = prepare_data.moses_tokenizer(tgt_lang)


def _token_counts(pair):
    src, tgt = pair
    # Empty lines stay empty (sacremoses would return "" anyway; this skips the work).
    src_len = len(_TOKENIZERS["src"](src).split()) if src.strip() else 0
    tgt_len = len(_TOKENIZERS["tgt"](tgt).split()) if tgt.strip() else 0
    return src_len, tgt_len


def clean(src_lines, tgt_lines, src_lang, tgt_lang, ratio=1.5, min_len=1, max_len=250, workers=1):
    """Return ``(kept_pairs, stats)``; ``stats`` counts ``input``, ``kept``, ``length`` and ``ratio``."""
    if len(src_lines) != len(tgt_lines):
        raise CleanError(f"the two sides have different line counts: {len(src_lines)} vs {len(tgt_lines)}")
    if not src_lines:
        raise CleanError("the corpus is empty")
    pairs = list(zip(src_lines, tgt_lines))
    if workers > 1 and len(pairs) > 1000:
        with multiprocessing.Pool(workers, _init_worker, (src_lang, tgt_lang)) as pool:
            counts = pool.map(_token_counts, pairs, chunksize=2000)
    else:
        _init_worker(src_lang, tgt_lang)
        counts = [_token_counts(pair) for pair in pairs]
    stats = {"input": len(pairs), "kept": 0, "length": 0, "ratio": 0}
    kept = []
    for pair, (src_len, tgt_len) in zip(pairs, counts):
        verdict = pair_verdict(src_len, tgt_len, ratio, min_len, max_len)
        if verdict is None:
            kept.append(pair)
            stats["kept"] += 1
        else:
            stats[verdict] += 1
    return kept, stats


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Keep sentence pairs with 1..250 Moses tokens per side and a length ratio <= 1.5.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--prefix", required=True, help="input corpus: PREFIX.SRC and PREFIX.TGT (raw text)")
    parser.add_argument("--out-prefix", required=True, help="output corpus: OUT_PREFIX.SRC and OUT_PREFIX.TGT")
    parser.add_argument("--source-lang", "-s", default="en")
    parser.add_argument("--target-lang", "-t", default="de")
    parser.add_argument("--ratio", type=float, default=1.5, help="maximum length ratio of the two sides")
    parser.add_argument("--min-len", type=int, default=1, help="minimum tokens per side")
    parser.add_argument("--max-len", type=int, default=250, help="maximum tokens per side")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="tokenizer processes")
    parser.add_argument("--stats", help="also write the counts as JSON to this file")
    args = parser.parse_args(argv)
    if args.min_len < 1 or args.max_len < args.min_len or args.ratio < 1:
        parser.error("need 1 <= --min-len <= --max-len and --ratio >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    langs = (args.source_lang, args.target_lang)
    try:
        src_lines, tgt_lines = (read_corpus_lines(f"{args.prefix}.{lang}") for lang in langs)
        kept, stats = clean(
            src_lines, tgt_lines, *langs, ratio=args.ratio, min_len=args.min_len, max_len=args.max_len,
            workers=max(1, args.workers),
        )
        if not kept:
            raise CleanError(f"all {stats['input']} pairs were dropped (length {args.min_len}..{args.max_len}, "
                             f"ratio {args.ratio}): nothing to write")
    except CleanError as error:
        print(f"clean_corpus.py: error: {error}", file=sys.stderr)
        return 2
    for side, lang in enumerate(langs):
        prepare_data.write_lines_atomically(f"{args.out_prefix}.{lang}", (pair[side] for pair in kept))
    if args.stats:
        with open(args.stats, "w", encoding="utf-8") as handle:
            json.dump(stats, handle)
    print(
        f"clean_corpus.py: kept {stats['kept']} of {stats['input']} pairs "
        f"(dropped {stats['length']} for length outside {args.min_len}..{args.max_len}, "
        f"{stats['ratio']} for a ratio above {args.ratio})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
