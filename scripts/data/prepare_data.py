#!/usr/bin/env python3
"""Tokenize, BPE-encode and binarize a raw parallel corpus for fairseq.

Pipeline (each step is skipped when its outputs are newer than its inputs
and were made with the same settings; ``--force`` redoes everything):

1. ``tok/``: Moses punctuation normalisation and tokenization (sacremoses),
   with aggressive dash splitting (``-`` -> ``@-@``) as in fairseq's WMT14
   En-De recipe.  Escaping is off, so ``fairseq-interactive`` needs
   ``--tokenizer moses --moses-no-escape`` to encode its input like the
   training data (without it ``'s`` becomes ``&apos;s``, all ``<unk>``).
2. ``bpe/codes``: joint BPE (subword-nmt) learned on both training sides.
3. ``bpe/``: every split with the codes applied.
4. ``fairseq-preprocess --joined-dictionary`` into the data-bin folder;
   the BPE codes are copied next to it as ``bpecodes`` so that
   ``fairseq-interactive DATA_BIN --tokenizer moses --moses-no-escape --bpe subword_nmt
   --bpe-codes DATA_BIN/bpecodes`` works with nothing else.
5. A consistency check of codes against dictionary (see
   :func:`check_bpe_matches_dictionary`), also available alone with
   ``--check-only``.
"""
import argparse
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import time

from tqdm import tqdm

import text_files  # beside this script (its folder is on sys.path whether run or imported)

SPLITS = ("train", "valid", "test")

#: Fraction of sampled subword tokens allowed to be missing from the
#: dictionary before the BPE codes count as not matching it.  0 would be
#: exact for a dictionary built by this script (it holds every subword of the
#: BPE'd training text); the slack admits dictionaries pruned with
#: fairseq-preprocess --thresholdsrc / --nwordssrc.
MAX_MISSING_FRACTION = 0.01
CHECK_SAMPLE_LINES = 1000


class PrepareError(ValueError):
    """Bad input to data preparation (missing files, mismatched BPE codes)."""


def log(message):
    print(f"[prepare] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Step caching
# --------------------------------------------------------------------------


def _stamp_path(output):
    folder, name = os.path.split(output)
    return os.path.join(folder, f".{name}.params.json")


def is_up_to_date(inputs, outputs, params):
    """True when every output exists, is at least as new as every input, and
    was made with the same ``params`` (recorded in a hidden stamp file next
    to the first output)."""
    if not all(os.path.exists(path) for path in outputs):
        return False
    newest_input = max(os.path.getmtime(path) for path in inputs)
    if min(os.path.getmtime(path) for path in outputs) < newest_input:
        return False
    try:
        with open(_stamp_path(outputs[0]), encoding="utf-8") as handle:
            return json.load(handle) == params
    except (OSError, ValueError):
        return False


def record_params(outputs, params):
    with open(_stamp_path(outputs[0]), "w", encoding="utf-8") as handle:
        json.dump(params, handle, sort_keys=True)


def run_step(name, inputs, outputs, params, action, force=False):
    """Run ``action()`` unless the outputs are up to date; returns whether it ran."""
    missing = [path for path in inputs if not os.path.exists(path)]
    if missing:
        raise PrepareError(f"{name}: missing input file {missing[0]}")
    if not force and is_up_to_date(inputs, outputs, params):
        log(f"{name}: up to date, skipped")
        return False
    start = time.time()
    action()
    record_params(outputs, params)
    log(f"{name}: done in {time.time() - start:.1f}s")
    return True


def write_lines_atomically(path, lines):
    """Write lines to ``path`` via a temp file, so an interrupted run never
    leaves a truncated file that looks up to date."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
    os.replace(tmp, path)


def read_lines(path):
    """Lines of a UTF-8 text file; unreadable input raises :class:`PrepareError`."""
    return text_files.read_lines(path, PrepareError)


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------


def moses_tokenizer(lang):
    """Return ``f(line) -> tokenized line`` doing the WMT14 recipe's
    normalisation and tokenization for ``lang``."""
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

    normalizer = MosesPunctNormalizer(lang=lang, post_remove_control_chars=True)
    tokenizer = MosesTokenizer(lang=lang)

    def tokenize(line):
        return tokenizer.tokenize(
            normalizer.normalize(line), aggressive_dash_splits=True, return_str=True, escape=False
        )

    return tokenize


def tokenize_file(src_path, out_path, lang, quiet=False):
    lines = read_lines(src_path)
    tokenize = moses_tokenizer(lang)
    bar = tqdm(lines, desc=f"tokenize {os.path.basename(src_path)}", unit=" lines", disable=quiet, mininterval=1)
    write_lines_atomically(out_path, (tokenize(line).strip() for line in bar))


def learn_joint_bpe(train_files, codes_path, merges, quiet=False):
    """Learn ``merges`` joint BPE merge operations on the given files."""
    from subword_nmt.learn_bpe import learn_bpe

    if not quiet:
        log(f"learning {merges} joint BPE merges on {', '.join(train_files)}")
    handles = [open(path, encoding="utf-8") for path in train_files]
    tmp = f"{codes_path}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            learn_bpe(itertools.chain(*handles), out, merges)
    finally:
        for handle in handles:
            handle.close()
    os.replace(tmp, codes_path)


def load_bpe(codes_path):
    from subword_nmt.apply_bpe import BPE

    try:
        with open(codes_path, encoding="utf-8") as handle:
            return BPE(handle)
    except OSError as error:
        raise PrepareError(f"cannot read BPE codes {codes_path}: {error.strerror or error}") from error
    except (ValueError, IndexError) as error:
        raise PrepareError(f"{codes_path} is not a subword-nmt BPE codes file ({error})") from error


def apply_bpe_file(bpe, src_path, out_path, quiet=False):
    lines = read_lines(src_path)
    bar = tqdm(lines, desc=f"apply BPE {os.path.basename(src_path)}", unit=" lines", disable=quiet, mininterval=1)
    write_lines_atomically(out_path, (bpe.process_line(line) for line in bar))


def binarized_outputs(dest_dir, src, tgt, splits):
    names = [f"dict.{src}.txt", f"dict.{tgt}.txt"]
    for split in splits:
        for lang in (src, tgt):
            names += [f"{split}.{src}-{tgt}.{lang}.bin", f"{split}.{src}-{tgt}.{lang}.idx"]
    return [os.path.join(dest_dir, name) for name in names]


def binarize(bpe_dir, dest_dir, src, tgt, splits, workers, srcdict=None, quiet=False):
    """Run ``fairseq-preprocess --joined-dictionary`` on the BPE'd splits."""
    os.makedirs(dest_dir, exist_ok=True)
    # fairseq-preprocess refuses to overwrite a dictionary it would build.
    for path in binarized_outputs(dest_dir, src, tgt, splits):
        if os.path.exists(path):
            os.remove(path)
    command = [sys.executable, "-m", "fairseq_cli.preprocess", "--source-lang", src, "--target-lang", tgt]
    for split, flag in (("train", "--trainpref"), ("valid", "--validpref"), ("test", "--testpref")):
        if split in splits:
            command += [flag, os.path.join(bpe_dir, split)]
    command += ["--destdir", dest_dir, "--joined-dictionary", "--workers", str(workers)]
    if srcdict:
        command += ["--srcdict", srcdict]
    log("running " + " ".join(command[2:]))
    output = {"capture_output": True, "text": True} if quiet else {"stdout": sys.stderr}
    result = subprocess.run(command, check=False, **output)
    if result.returncode != 0:
        if quiet:
            sys.stderr.write((result.stdout or "")[-2000:] + (result.stderr or "")[-2000:])
        raise PrepareError(f"fairseq-preprocess failed with exit status {result.returncode}")


# --------------------------------------------------------------------------
# BPE / dictionary consistency
# --------------------------------------------------------------------------


def read_dictionary_symbols(dict_path):
    """Symbols of a fairseq ``dict.*.txt`` (``symbol count [flags]`` lines)."""
    symbols = set()
    for line in read_lines(dict_path):
        symbol, _, last = line.rstrip().rpartition(" ")
        if last.startswith("#fairseq:"):  # e.g. "foo 12 #fairseq:overwrite"
            symbol = symbol.rpartition(" ")[0]
        if symbol:
            symbols.add(symbol)
    return symbols


def check_bpe_matches_dictionary(codes_path, dict_path, tokenized_lines, max_missing=MAX_MISSING_FRACTION):
    """Check that ``codes_path`` is the BPE the dictionary was built with.

    The check: apply the codes to a sample of *tokenized training* text
    and look every resulting subword up in the dictionary.  With the right
    codes all of them are there (the dictionary was built from exactly that
    text), so more than ``max_missing`` of them missing means the codes and
    the dictionary come from different BPE runs (another merge count or
    corpus), which would silently turn many inputs into ``<unk>``.

    Returns ``(missing, total)``; raises :class:`PrepareError` on a mismatch.
    """
    bpe = load_bpe(codes_path)
    symbols = read_dictionary_symbols(dict_path)
    missing, total, examples = 0, 0, []
    for line in tokenized_lines:
        for token in bpe.process_line(line).split():
            total += 1
            if token not in symbols:
                missing += 1
                if len(examples) < 5:
                    examples.append(token)
    if total == 0:
        raise PrepareError("BPE/dictionary check: the text sample is empty")
    if missing > max_missing * total:
        raise PrepareError(
            f"BPE codes {codes_path} do not match dictionary {dict_path}: "
            f"{missing} of {total} sampled subwords ({100.0 * missing / total:.1f}%) are not in the "
            f"dictionary, e.g. {' '.join(examples)}; rebuild both with the same prepare_data.py run"
        )
    return missing, total


def sample_lines(paths, count):
    """The first ``count`` lines of each file (deterministic, cheap)."""
    lines = []
    for path in paths:
        lines.extend(read_lines(path)[:count])
    return lines


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


def sacremoses_version():
    try:
        from importlib.metadata import version

        return version("sacremoses")
    except Exception:  # metadata missing in odd installs: caching still works
        return "unknown"


def file_digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:16]


def prepare(args):
    """Run every step; returns the data-bin folder."""
    tok_dir = os.path.join(args.work_dir, "tok")
    bpe_dir = os.path.join(args.work_dir, "bpe")
    for folder in (tok_dir, bpe_dir, args.dest_dir):
        os.makedirs(folder, exist_ok=True)
    langs = (args.source_lang, args.target_lang)
    pairs = [(split, lang) for split in args.splits for lang in langs]
    for split in args.splits:
        # fairseq-preprocess binarizes mismatched sides without a word; training then fails far later
        text_files.check_parallel(*(os.path.join(args.raw_dir, f"{split}.{lang}") for lang in langs),
                                  error=PrepareError, what=f"{split} split:")

    tok_params = {"tokenizer": "moses", "aggressive_dash_splits": True, "escape": False, "sacremoses": sacremoses_version()}
    for split, lang in pairs:
        raw, tok = os.path.join(args.raw_dir, f"{split}.{lang}"), os.path.join(tok_dir, f"{split}.{lang}")
        run_step(
            f"tokenize {split}.{lang}",
            [raw],
            [tok],
            dict(tok_params, lang=lang),
            lambda raw=raw, tok=tok, lang=lang: tokenize_file(raw, tok, lang, args.quiet),
            args.force,
        )

    codes = os.path.join(bpe_dir, "codes")
    train_tok = [os.path.join(tok_dir, f"train.{lang}") for lang in langs]
    if args.bpe_codes:
        codes = args.bpe_codes
        if not os.path.exists(codes):
            raise PrepareError(f"--bpe-codes {codes} does not exist")
    else:
        run_step(
            f"learn BPE ({args.bpe_merges} merges)",
            train_tok,
            [codes],
            {"merges": args.bpe_merges},
            lambda: learn_joint_bpe(train_tok, codes, args.bpe_merges, args.quiet),
            args.force,
        )

    bpe = None
    codes_params = {"codes": os.path.abspath(codes), "digest": file_digest(codes)}
    for split, lang in pairs:
        tok, out = os.path.join(tok_dir, f"{split}.{lang}"), os.path.join(bpe_dir, f"{split}.{lang}")

        def apply(tok=tok, out=out):
            nonlocal bpe
            bpe = bpe or load_bpe(codes)
            apply_bpe_file(bpe, tok, out, args.quiet)

        run_step(f"apply BPE {split}.{lang}", [tok, codes], [out], codes_params, apply, args.force)

    if args.srcdict:
        # Fail before the slow binarization, not after.
        check_bpe_matches_dictionary(codes, args.srcdict, sample_lines(train_tok, CHECK_SAMPLE_LINES))
    bpe_files = [os.path.join(bpe_dir, f"{split}.{lang}") for split, lang in pairs]
    run_step(
        "binarize (fairseq-preprocess --joined-dictionary)",
        bpe_files + ([args.srcdict] if args.srcdict else []),
        binarized_outputs(args.dest_dir, args.source_lang, args.target_lang, args.splits),
        {"splits": list(args.splits), "srcdict": args.srcdict},
        lambda: binarize(
            bpe_dir, args.dest_dir, args.source_lang, args.target_lang, args.splits, args.workers, args.srcdict, args.quiet
        ),
        args.force,
    )

    dest_codes = os.path.join(args.dest_dir, "bpecodes")
    run_step("copy BPE codes", [codes], [dest_codes], codes_params, lambda: shutil.copyfile(codes, dest_codes), args.force)

    dict_path = os.path.join(args.dest_dir, f"dict.{args.source_lang}.txt")
    missing, total = check_bpe_matches_dictionary(dest_codes, dict_path, sample_lines(train_tok, CHECK_SAMPLE_LINES))
    log(f"BPE/dictionary check: {total - missing}/{total} sampled subwords in {dict_path}")
    write_summary(args, dest_codes, dict_path)
    return args.dest_dir


def write_summary(args, codes, dict_path):
    summary = {
        "source_lang": args.source_lang,
        "target_lang": args.target_lang,
        "tokenizer": "moses (sacremoses, aggressive dash splits, no escaping)",
        "bpe": "subword_nmt",
        "bpe_merges": None if args.bpe_codes else args.bpe_merges,
        "bpe_codes": os.path.basename(codes),
        "dictionary_size": len(read_dictionary_symbols(dict_path)),
        "raw_dir": args.raw_dir,
    }
    path = os.path.join(args.dest_dir, "prepare.json")
    text = json.dumps(summary, indent=2) + "\n"
    # rewritten only on change, so a cached re-run leaves data-bin untouched
    if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    if not args.quiet:
        log(
            f"ready: {args.dest_dir} (joint dictionary of {summary['dictionary_size']} symbols); interactive use:\n"
            f"  fairseq-interactive {args.dest_dir} --path CHECKPOINT -s {args.source_lang} -t {args.target_lang} "
            f"--tokenizer moses --moses-no-escape --bpe subword_nmt --bpe-codes {codes}"
        )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Moses-tokenize, joint-BPE and binarize a parallel corpus for fairseq (cached steps).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--raw-dir", default="data/quickstart/raw", help="folder with {split}.{lang} text files")
    parser.add_argument("--work-dir", default="data/quickstart", help="tok/ and bpe/ are written here")
    parser.add_argument("--dest-dir", default="data-bin/quickstart", help="fairseq data-bin output folder")
    parser.add_argument("--source-lang", "-s", default="en")
    parser.add_argument("--target-lang", "-t", default="de")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS, help="must include train")
    parser.add_argument(
        "--bpe-merges", type=int, default=8000, help="joint BPE merge operations (~8k suits ~70k short pairs)"
    )
    parser.add_argument("--bpe-codes", help="use these BPE codes instead of learning new ones")
    parser.add_argument("--srcdict", help="reuse this joint fairseq dictionary (checked against the codes)")
    parser.add_argument("--workers", type=int, default=2, help="fairseq-preprocess workers")
    parser.add_argument("--force", action="store_true", help="redo every step")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--check-only",
        nargs=3,
        metavar=("CODES", "DICT", "TOKENIZED_TEXT"),
        help="only check that BPE CODES match fairseq dictionary DICT on a tokenized text sample",
    )
    args = parser.parse_args(argv)
    if "train" not in args.splits and not args.check_only:
        parser.error("--splits must include train")
    if args.bpe_merges < 1:
        parser.error("--bpe-merges must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.check_only:
            codes, dictionary, text = args.check_only
            missing, total = check_bpe_matches_dictionary(codes, dictionary, read_lines(text)[:CHECK_SAMPLE_LINES])
            print(f"ok: {total - missing}/{total} sampled subwords are in {dictionary}")
        else:
            prepare(args)
    except PrepareError as error:
        print(f"prepare_data.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
