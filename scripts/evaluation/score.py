#!/usr/bin/env python3
"""Score translations: detokenized sacreBLEU, tokenized compound-split BLEU, chrF.

Two BLEU numbers are reported because the literature uses both
(REFERENCE §5):

* **sacreBLEU** on detokenized text, with its signature, comparable
  across toolkits;
* **tokenized BLEU with compound splitting**, the number NAT papers quote:
  on Moses-tokenized text, every ``(\\S)-(\\S)`` becomes
  ``\\1 ##AT##-##AT## \\2`` in hypothesis and reference, then plain 4-gram
  BLEU is computed on whitespace tokens (no smoothing, as fairseq-score and
  multi-bleu.perl do).

Input is either a ``fairseq-generate`` output file (``H-``/``D-`` and
``T-`` lines, sorted back into corpus order by id) or ``--hyp FILE --ref
FILE``.  The functions are importable (``read_generate_output``,
``score_corpus``, ...) for the benchmark tools and tests.
"""
import argparse
import json
import os
import re
import sys

# Scripts live in job folders under scripts/; a script that needs one from another folder
# puts that folder on sys.path itself, so it runs from any cwd and imports the same way in tests.
_SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [p for p in (os.path.join(_SCRIPTS, "data"),) if p not in sys.path]

import text_files  # noqa: E402  (scripts/data/text_files.py)

try:
    from nat_plugins.scoring import compound_split
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, os.path.dirname(_SCRIPTS))
    from nat_plugins.scoring import compound_split

#: The lines of ``fairseq-generate`` output we read; everything else (log
#: lines when stderr was redirected too, ``P-``/``S-`` lines) is ignored.
_GENERATE_LINE = re.compile(r"^([HDT])-(\d+)\t(.*)$")


class ScoreError(ValueError):
    """Unusable scoring input (missing lines, mismatched counts)."""


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def read_lines(path):
    """Lines of a UTF-8 text file; unreadable input raises :class:`ScoreError`."""
    return text_files.read_lines(path, ScoreError)


def parse_generate_lines(lines, hyp_field="H"):
    """Return ``(ids, hypotheses, references)`` from ``fairseq-generate``
    output lines, sorted by sentence id.

    ``hyp_field`` is ``"H"`` (BPE-removed if generated with ``--remove-bpe``,
    still tokenized) or ``"D"`` (detokenized by ``--tokenizer``/``--bpe``).
    With ``--nbest`` > 1 the first (best) hypothesis of each id is used.
    References are ``None`` when the file holds no ``T-`` lines.
    """
    hyps, refs = {}, {}
    for line in lines:
        match = _GENERATE_LINE.match(line)
        if not match:
            continue
        kind, sid, rest = match.group(1), int(match.group(2)), match.group(3)
        if kind == "T":
            refs[sid] = rest
        elif kind == hyp_field:
            # "H-12<TAB>score<TAB>text"; the text may be empty
            hyps.setdefault(sid, rest.split("\t", 1)[1] if "\t" in rest else "")
    if not hyps:
        raise ScoreError(f"no {hyp_field}- lines found: is this fairseq-generate output (without --quiet)?")
    ids = sorted(hyps)
    if not refs:
        return ids, [hyps[i] for i in ids], None
    if set(refs) != set(hyps):
        only_h = sorted(set(hyps) - set(refs))[:5]
        only_t = sorted(set(refs) - set(hyps))[:5]
        raise ScoreError(
            f"{hyp_field}- and T- lines cover different sentence ids "
            f"({len(hyps)} vs {len(refs)}; e.g. hypothesis only {only_h}, reference only {only_t})"
        )
    return ids, [hyps[i] for i in ids], [refs[i] for i in ids]


def read_generate_output(path, hyp_field="H"):
    """:func:`parse_generate_lines` on a file."""
    return parse_generate_lines(read_lines(path), hyp_field)


# --------------------------------------------------------------------------
# Text processing
# --------------------------------------------------------------------------


def remove_bpe(line, marker="@@"):
    """Undo subword-nmt segmentation (``"ver@@ stehen"`` -> ``"verstehen"``)."""
    return (line + " ").replace(marker + " ", "").rstrip()


def split_compounds(line):
    """fairseq's compound splitting for tokenized BLEU (one implementation,
    shared with the plugin's validation: :func:`nat_plugins.scoring.compound_split`)."""
    return compound_split(line)


def moses_detokenize(lines, lang):
    from sacremoses import MosesDetokenizer

    detok = MosesDetokenizer(lang=lang)
    return [detok.detokenize(line.split()) for line in lines]


def moses_tokenize(lines, lang):
    """The tokenization of scripts/data/prepare_data.py (aggressive dash splits)."""
    from sacremoses import MosesTokenizer

    tok = MosesTokenizer(lang=lang)
    return [tok.tokenize(line, aggressive_dash_splits=True, return_str=True, escape=False) for line in lines]


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


def check_same_length(hyps, refs, what="hypothesis and reference"):
    if len(hyps) != len(refs):
        raise ScoreError(f"{what} have different line counts: {len(hyps)} vs {len(refs)}")
    if not hyps:
        raise ScoreError(f"{what} are empty")


def tokenized_bleu(hyps, refs):
    """Compound-split BLEU on already tokenized text; returns sacrebleu's
    ``BLEUScore`` (``.score``, ``.precisions``, ``.bp``, ``.sys_len``, ``.ref_len``).

    ``tokenize='none'`` + no smoothing is exactly multi-bleu.perl /
    fairseq-score: 4-gram precisions on whitespace tokens, brevity penalty,
    0 when any precision is 0.
    """
    from sacrebleu.metrics import BLEU

    check_same_length(hyps, refs)
    metric = BLEU(tokenize="none", smooth_method="none", force=True)
    return metric.corpus_score([split_compounds(h) for h in hyps], [[split_compounds(r) for r in refs]])


def sacre_bleu(hyps, refs):
    """sacreBLEU (13a, mixed case, exp smoothing) on detokenized text;
    returns ``(score_object, signature_string)``."""
    from sacrebleu.metrics import BLEU

    check_same_length(hyps, refs)
    metric = BLEU()
    return metric.corpus_score(hyps, [refs]), str(metric.get_signature())


def chrf(hyps, refs):
    """chrF2 on detokenized text; returns ``(score_object, signature_string)``."""
    from sacrebleu.metrics import CHRF

    check_same_length(hyps, refs)
    metric = CHRF()
    return metric.corpus_score(hyps, [refs]), str(metric.get_signature())


def score_corpus(hyps, refs, lang="de", tokenized=True, bpe=False, detok_refs=None):
    """Compute every metric; returns a JSON-ready dict.

    ``hyps``/``refs``: one string per sentence.  ``tokenized``: the text is
    Moses-tokenized (fairseq ``H-``/``T-`` lines); it is detokenized with
    sacremoses for sacreBLEU/chrF, else it is tokenized for tokenized BLEU.
    ``bpe``: remove ``@@ `` first.  ``detok_refs``: original untokenized
    references for sacreBLEU/chrF (better than detokenizing tokenized ones).
    """
    check_same_length(hyps, refs)
    if bpe:
        hyps, refs = [remove_bpe(h) for h in hyps], [remove_bpe(r) for r in refs]
    if tokenized:
        tok_hyps, tok_refs = hyps, refs
        plain_hyps = moses_detokenize(hyps, lang)
        plain_refs = detok_refs if detok_refs is not None else moses_detokenize(refs, lang)
    else:
        plain_hyps, plain_refs = hyps, detok_refs if detok_refs is not None else refs
        tok_hyps, tok_refs = moses_tokenize(hyps, lang), moses_tokenize(refs, lang)
    check_same_length(plain_hyps, plain_refs, "hypotheses and detokenized references")

    tok = tokenized_bleu(tok_hyps, tok_refs)
    sacre, sacre_sig = sacre_bleu(plain_hyps, plain_refs)
    chrf_score, chrf_sig = chrf(plain_hyps, plain_refs)
    return {
        "sentences": len(hyps),
        "bleu_tok": round(tok.score, 2),
        "bleu_tok_detail": {
            "precisions": [round(p, 1) for p in tok.precisions],
            "bp": round(tok.bp, 3),
            "hyp_len": tok.sys_len,
            "ref_len": tok.ref_len,
            "convention": "moses-tokenized, compound-split (##AT##), 4-gram, no smoothing",
        },
        "sacrebleu": round(sacre.score, 2),
        "sacrebleu_signature": sacre_sig,
        "chrf": round(chrf_score.score, 2),
        "chrf_signature": chrf_sig,
    }


def format_result(result):
    """The human-readable report: one line per metric."""
    d = result["bleu_tok_detail"]
    precisions = "/".join(f"{p:.1f}" for p in d["precisions"])
    return "\n".join(
        [
            f"BLEU (tokenized, compound-split) = {result['bleu_tok']:.2f}  "
            f"{precisions} (BP={d['bp']:.3f}, hyp_len={d['hyp_len']}, ref_len={d['ref_len']})",
            f"sacreBLEU = {result['sacrebleu']:.2f}  {result['sacrebleu_signature']}",
            f"chrF = {result['chrf']:.2f}  {result['chrf_signature']}",
        ]
    )


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def load_inputs(args):
    """Return ``(hyps, refs)`` from the command-line inputs."""
    if args.generate_output:
        _, hyps, refs = read_generate_output(args.generate_output, args.hyp_field)
        if args.ref:
            refs = read_lines(args.ref)
        if refs is None:
            raise ScoreError(f"{args.generate_output} has no T- lines; pass --ref FILE")
    else:
        hyps, refs = read_lines(args.hyp), read_lines(args.ref)
    check_same_length(hyps, refs)
    return hyps, refs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Score translations with detokenized sacreBLEU, tokenized compound-split BLEU and chrF.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("generate_output", nargs="?", help="fairseq-generate output file (H-/D- and T- lines)")
    parser.add_argument("--hyp", help="hypothesis file, one sentence per line")
    parser.add_argument("--ref", help="reference file (overrides T- lines)")
    parser.add_argument("--raw-ref", help="original untokenized reference, used for sacreBLEU and chrF")
    parser.add_argument("--hyp-field", choices=("H", "D"), default="H", help="which generate lines hold hypotheses")
    parser.add_argument("--remove-bpe", action="store_true", help="remove subword-nmt '@@ ' markers first")
    parser.add_argument(
        "--detokenized",
        action="store_true",
        help="the input is plain text (e.g. D- lines); default: Moses-tokenized (H-/T- lines)",
    )
    parser.add_argument("--lang", default="de", help="target language for Moses (de)tokenization")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text lines")
    args = parser.parse_args(argv)
    if bool(args.generate_output) == bool(args.hyp):
        parser.error("give either a fairseq-generate output file or --hyp FILE --ref FILE")
    if args.hyp and not args.ref:
        parser.error("--hyp needs --ref")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        hyps, refs = load_inputs(args)
        raw_refs = read_lines(args.raw_ref) if args.raw_ref else None
        if raw_refs is not None:
            check_same_length(hyps, raw_refs, "hypotheses and --raw-ref")
        result = score_corpus(
            hyps, refs, lang=args.lang, tokenized=not args.detokenized, bpe=args.remove_bpe, detok_refs=raw_refs
        )
    except ScoreError as error:
        print(f"score.py: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False) if args.json else format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
