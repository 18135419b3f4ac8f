#!/usr/bin/env python3
"""Build the offline English->German quickstart corpus.

No public En-De parallel corpus can be downloaded from a package registry,
but Debian's ``trans-de-en`` package (the TU Chemnitz "Ding" dictionary)
holds ~390k aligned German/English sub-entries, tens of thousands of which
are phrases and example sentences.  This tool turns them into plain-text
train/valid/test splits (``{split}.en`` / ``{split}.de``, one sentence per
line, direction En->De) plus a stats report (``stats.json``, ``stats.txt``).

Dictionary line format (one entry per line)::

    German | German sub-entry | ... :: English | English sub-entry | ...

The ``|`` sub-entries of the two sides are aligned one to one; inside a
sub-entry ``;`` separates synonyms; ``{m}``, ``[Am.]``, ``(sb./sth.)``,
``<keyword>``, ``/ABBR/`` and ``~crossref`` are annotations, not text.

Fallback: when the package cannot be installed (no apt, no repository),
``--source auto`` uses the gettext catalogs of the machine
(``/usr/share/locale/de/LC_MESSAGES/*.mo``: English UI strings with German
translations).  That corpus differs between machines, so results built on
it are not comparable; a warning says so.

The split is deterministic: pairs are ordered by a hash of their
normalised *target* and cut into test, valid, train, so identical targets
always land in the same split; sources are deduplicated globally, so no
source (up to case and punctuation) occurs in two splits either.
"""
import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter

from tqdm import tqdm

import text_files  # beside this script (its folder is on sys.path whether run or imported)
from corpus_sources import CorpusError, clean_ui_string, gettext_pairs, read_mo_catalog  # noqa: F401

DING_PATH = "/usr/share/trans/de-en"
DING_PACKAGE = "trans-de-en"
INSTALL_COMMAND = f"sudo apt-get install -y {DING_PACKAGE}"
GETTEXT_GLOB = "/usr/share/locale/de/LC_MESSAGES/*.mo"
SPLITS = ("test", "valid", "train")


# --------------------------------------------------------------------------
# Parsing the Ding dictionary
# --------------------------------------------------------------------------

# Innermost bracket groups only; stripped repeatedly so nested groups such as
# "(Arbeit (an jdn.))" vanish completely.
_BRACKETED = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|\([^()]*\)|<[^<>]*>")
_SLASH_ABBREVIATION = re.compile(r"(?<!\S)/[^/\s]+/(?!\S)")
# "~xref" is a see-also note running to the end of its alternative
_CROSS_REFERENCE = re.compile(r"(?<!\S)~[^;]*")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?…])")
_MARKUP_LEFT = re.compile(r"[{}\[\]()<>|~]")


def strip_annotations(text):
    """Remove Ding annotations (``{m}``, ``[Am.]``, ``(sb.)``, ``<kw>``,
    ``/ABBR/``, ``~xref``) and normalise whitespace.

    Must run *before* splitting on ``;``: some annotations contain ``;``
    themselves (``{dealt; dealt}``, ``{prp; +Dat.}``).
    """
    previous = None
    while previous != text:
        previous = text
        text = _BRACKETED.sub(" ", text)
    text = _SLASH_ABBREVIATION.sub(" ", text)
    text = _CROSS_REFERENCE.sub(" ", text)
    text = " ".join(text.split())
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def split_alternatives(text):
    """Split a sub-entry into its ``;``-separated synonyms (empty ones dropped)."""
    return [alt.strip() for alt in text.split(";") if alt.strip()]


def pair_alternatives(english, german):
    """Pair the synonyms of one aligned sub-entry, as ``[(en, de), ...]``.

    * Same number on both sides: Ding lists parallel variants in the same
      order, so pair them position by position.
    * One German alternative: every English synonym translates to it
      (many sources, one target: harmless for training).
    * Otherwise the correspondence is unknown; keep only the first of each
      side (the main translation) rather than inventing one-to-many pairs.
    """
    if not english or not german:
        return []
    if len(english) == len(german):
        return list(zip(english, german))
    if len(german) == 1:
        return [(en, german[0]) for en in english]
    return [(english[0], german[0])]


def parse_ding_line(line):
    """Return the ``(english, german)`` pairs of one dictionary line.

    Returns ``None`` for a line that is not an entry (comment, blank, no
    ``::``) or whose ``|`` sub-entries are not aligned (different counts),
    and a possibly empty list otherwise.
    """
    line = line.strip()
    if not line or line.startswith("#") or line.count("::") != 1:
        return None
    german_side, english_side = line.split("::")
    german_subs = german_side.split("|")
    english_subs = english_side.split("|")
    if len(german_subs) != len(english_subs):
        return None
    pairs = []
    for german, english in zip(german_subs, english_subs):
        pairs.extend(
            pair_alternatives(
                split_alternatives(strip_annotations(english)),
                split_alternatives(strip_annotations(german)),
            )
        )
    return pairs


# --------------------------------------------------------------------------
# Filtering, deduplication, splitting
# --------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def rejection_reason(english, german, min_tokens=3, max_tokens=60, max_ratio=2.0):
    """Return why a pair is unusable as a sentence pair, or ``None`` to keep it.

    Lengths are whitespace tokens.  Single words and two-word terms are
    dictionary headwords rather than phrases, hence the lower bound; the
    ratio bound drops explanations posing as translations.
    """
    if _MARKUP_LEFT.search(english) or _MARKUP_LEFT.search(german):
        return "leftover_markup"
    if not _WORD.search(english) or not _WORD.search(german):
        return "no_words"
    en_len, de_len = len(english.split()), len(german.split())
    if min(en_len, de_len) < min_tokens:
        return "too_short"
    if max(en_len, de_len) > max_tokens:
        return "too_long"
    if max(en_len, de_len) > max_ratio * min(en_len, de_len):
        return "length_ratio"
    if english.casefold() == german.casefold():
        return "untranslated"
    return None


def normalized_key(text):
    """Key under which two sentences count as the same: lower-cased words,
    punctuation and spacing ignored."""
    return " ".join(_WORD.findall(text.casefold()))


def stable_hash(text, salt=""):
    """A hash that is the same on every machine and Python run (unlike ``hash``)."""
    return hashlib.sha256((salt + "\t" + text).encode("utf-8")).hexdigest()


def split_pairs(pairs, valid_size, test_size, salt=""):
    """Split pairs into ``{"test": [...], "valid": [...], "train": [...]}``.

    Pairs are ordered by the hash of their normalised target; test takes
    whole target groups until it holds at least ``test_size`` pairs, then
    valid likewise, train the rest.  Same target -> same split, so no
    reference text is shared between splits.
    """
    ordered = sorted(pairs, key=lambda p: (stable_hash(normalized_key(p[1]), salt), p))
    wanted = {"test": test_size, "valid": valid_size}
    splits = {name: [] for name in SPLITS}
    current, previous_key = 0, None
    for pair in ordered:
        key = normalized_key(pair[1])
        name = SPLITS[current]
        if name != "train" and len(splits[name]) >= wanted[name] and key != previous_key:
            current += 1
            name = SPLITS[current]
            # valid may be asked to be empty
            if name != "train" and wanted[name] == 0:
                current += 1
                name = SPLITS[current]
        splits[name].append(pair)
        previous_key = key
    return splits


def collect_pairs(raw_pairs, stats, **filter_args):
    """Filter and deduplicate ``(english, german)`` pairs (first one wins).

    Deduplication is on the normalised *source*, so each English sentence
    has exactly one reference and never appears in two splits.
    """
    kept, seen_sources = [], set()
    rejected = Counter()
    for english, german in raw_pairs:
        stats["candidate_pairs"] += 1
        reason = rejection_reason(english, german, **filter_args)
        if reason is None:
            key = normalized_key(english)
            if key in seen_sources:
                reason = "duplicate_source"
            else:
                seen_sources.add(key)
                kept.append((english, german))
        if reason is not None:
            rejected[reason] += 1
    stats["rejected"] = dict(sorted(rejected.items()))
    stats["kept_pairs"] = len(kept)
    return kept


# --------------------------------------------------------------------------
# Getting the source text
# --------------------------------------------------------------------------


def _apt_install(package):
    # An outdated package index is the usual reason for "Unable to locate
    # package", so retry once after refreshing it.
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for refresh in (False, True):
        if refresh:
            subprocess.run(["apt-get", "update"], env=env, check=False, **quiet)
        result = subprocess.run(["apt-get", "install", "-y", package], env=env, check=False, **quiet)
        if result.returncode == 0:
            return True
    return False


def ensure_ding_dictionary(path, allow_install=True):
    """Return ``path`` if the Ding dictionary is there, installing the
    Debian package first when running as root.

    Returns ``None`` when an install was tried and failed (the caller may
    fall back); raises :class:`CorpusError` when it cannot even be tried.
    """
    if os.path.exists(path):
        return path
    if path != DING_PATH:
        raise CorpusError(f"dictionary file {path} does not exist")
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not (allow_install and is_root and shutil.which("apt-get")):
        raise CorpusError(
            f"{path} is missing: install it with `{INSTALL_COMMAND}` "
            "(or use --source gettext for a machine-dependent fallback corpus)"
        )
    print(f"[corpus] {path} missing: running apt-get install -y {DING_PACKAGE}", file=sys.stderr)
    if _apt_install(DING_PACKAGE) and os.path.exists(path):
        return path
    return None


def _count_lines(path):
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def read_ding_pairs(path, stats, progress=True):
    """Yield the ``(english, german)`` pairs of a Ding dictionary file."""
    try:
        total = _count_lines(path)
        handle = open(path, encoding="utf-8")
    except OSError as error:
        raise CorpusError(f"cannot read dictionary {path}: {error.strerror or error}") from error
    with handle:
        lines = tqdm(handle, total=total, unit=" lines", desc="parse", disable=not progress, mininterval=1)
        try:
            for line in lines:
                stats["lines"] += 1
                if line.startswith("# Version"):
                    stats["source_version"] = line.split("::", 1)[-1].strip()
                pairs = parse_ding_line(line)
                if pairs is None:
                    if line.strip() and not line.startswith("#"):
                        stats["misaligned_entries"] += 1
                    continue
                stats["entries"] += 1
                yield from pairs
        except UnicodeDecodeError as error:
            raise CorpusError(f"{path} is not UTF-8 text (line {stats['lines'] + 1}): {error.reason}") from error


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_source(args):
    """Decide which source to read: returns ``("ding", path)`` or
    ``("gettext", [paths])``, installing the dictionary if needed."""
    if args.source in ("auto", "ding"):
        path = ensure_ding_dictionary(args.dict_file, allow_install=not args.no_install)
        if path is not None:
            return "ding", path
        if args.source == "ding":
            raise CorpusError(f"could not install {DING_PACKAGE}; try `{INSTALL_COMMAND}` by hand")
    paths = sorted(glob.glob(args.gettext_glob))
    if not paths:
        raise CorpusError(
            f"no corpus source: {DING_PACKAGE} could not be installed and no catalogs match {args.gettext_glob}"
        )
    print(
        f"[corpus] WARNING: using the gettext catalogs of this machine ({len(paths)} files); "
        "the corpus, and every BLEU computed on it, depends on which packages are installed. "
        f"Install {DING_PACKAGE} for the reference corpus.",
        file=sys.stderr,
    )
    return "gettext", paths


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def write_splits(splits, out_dir, src="en", tgt="de"):
    os.makedirs(out_dir, exist_ok=True)
    for name, pairs in splits.items():
        for index, lang in ((0, src), (1, tgt)):
            with open(os.path.join(out_dir, f"{name}.{lang}"), "w", encoding="utf-8") as handle:
                handle.writelines(pair[index] + "\n" for pair in pairs)


def split_stats(pairs):
    en_tokens = sum(len(en.split()) for en, _ in pairs)
    de_tokens = sum(len(de.split()) for _, de in pairs)
    n = max(len(pairs), 1)
    return {
        "pairs": len(pairs),
        "en_tokens": en_tokens,
        "de_tokens": de_tokens,
        "en_mean_tokens": round(en_tokens / n, 2),
        "de_mean_tokens": round(de_tokens / n, 2),
    }


def format_stats_text(stats):
    lines = [
        "Quickstart corpus (English -> German)",
        f"source: {stats['source']} {stats.get('source_version', '')}".rstrip(),
        f"input: {stats['input']}",
    ]
    for key in ("lines", "entries", "misaligned_entries", "candidate_pairs", "kept_pairs"):
        if key in stats:
            lines.append(f"{key}: {stats[key]}")
    for reason, count in stats.get("rejected", {}).items():
        lines.append(f"rejected {reason}: {count}")
    for name in SPLITS:
        s = stats["splits"][name]
        lines.append(
            f"{name}: {s['pairs']} pairs, en {s['en_tokens']} tokens (mean {s['en_mean_tokens']}), "
            f"de {s['de_tokens']} tokens (mean {s['de_mean_tokens']})"
        )
    return "\n".join(lines) + "\n"


def write_stats(stats, out_dir):
    with open(os.path.join(out_dir, "stats.json"), "w", encoding="utf-8") as handle:
        json.dump(stats, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    text = format_stats_text(stats)
    with open(os.path.join(out_dir, "stats.txt"), "w", encoding="utf-8") as handle:
        handle.write(text)
    return text


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def build_corpus(args):
    """Run the whole build; returns the stats dictionary."""
    kind, where = resolve_source(args)
    stats = Counter()
    if kind == "ding":
        raw = read_ding_pairs(where, stats, progress=not args.quiet)
        inputs = where
    else:
        raw = tqdm(gettext_pairs(where), unit=" pairs", desc="gettext", disable=args.quiet, mininterval=1)
        inputs = f"{len(where)} catalogs matching {args.gettext_glob}"
    filters = {"min_tokens": args.min_tokens, "max_tokens": args.max_tokens, "max_ratio": args.max_ratio}
    pairs = collect_pairs(raw, stats, **filters)
    if not pairs:
        raise CorpusError(f"no usable sentence pairs in {inputs} ({stats['lines']} lines read)")
    if len(pairs) <= args.valid_size + args.test_size:
        raise CorpusError(
            f"only {len(pairs)} usable pairs in {inputs}: not enough for "
            f"--valid-size {args.valid_size} + --test-size {args.test_size} plus a training set"
        )
    splits = split_pairs(pairs, args.valid_size, args.test_size, salt=args.split_salt)
    for name in SPLITS:
        if not splits[name] and (name != "valid" or args.valid_size > 0):
            raise CorpusError(f"the {name} split came out empty ({len(pairs)} usable pairs in {inputs}); "
                              "change --valid-size/--test-size or --split-salt")
    write_splits(splits, args.out_dir)
    for name in SPLITS:
        if splits[name]:  # a line break inside a pair would misalign the two sides from there on
            text_files.check_parallel(*(os.path.join(args.out_dir, f"{name}.{lang}") for lang in ("en", "de")),
                                      error=CorpusError, what=f"{name} split:")
    report = dict(stats)
    report.update(
        source=kind,
        input=inputs,
        source_sha256=file_sha256(where) if kind == "ding" else None,
        direction="en-de",
        settings=dict(filters, valid_size=args.valid_size, test_size=args.test_size, split_salt=args.split_salt),
        splits={name: split_stats(splits[name]) for name in SPLITS},
    )
    if kind == "gettext":
        report["warning"] = "built from this machine's gettext catalogs: not comparable across machines"
    text = write_stats(report, args.out_dir)
    if not args.quiet:
        print(text, end="", file=sys.stderr)
    return report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Build the offline En->De quickstart corpus from the Ding dictionary "
        f"(Debian package {DING_PACKAGE}), falling back to gettext catalogs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out-dir", default="data/quickstart/raw", help="where {train,valid,test}.{en,de} go")
    parser.add_argument(
        "--source",
        choices=("auto", "ding", "gettext"),
        default="auto",
        help="auto: the Ding dictionary, installed via apt when root, gettext catalogs if that fails",
    )
    parser.add_argument("--dict-file", default=DING_PATH, help="Ding dictionary file")
    parser.add_argument("--gettext-glob", default=GETTEXT_GLOB, help="catalogs for --source gettext")
    parser.add_argument("--no-install", action="store_true", help="never run apt-get")
    parser.add_argument("--min-tokens", type=int, default=3, help="min whitespace tokens per side")
    parser.add_argument("--max-tokens", type=int, default=60, help="max whitespace tokens per side")
    parser.add_argument("--max-ratio", type=float, default=2.0, help="max token-length ratio of a pair")
    parser.add_argument("--valid-size", type=int, default=1000, help="pairs in the validation split (about)")
    parser.add_argument("--test-size", type=int, default=1200, help="pairs in the test split (about)")
    parser.add_argument("--split-salt", default="nat_plugins-quickstart-v1", help="changes the split")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or report on stderr")
    args = parser.parse_args(argv)
    if args.min_tokens < 1 or args.max_tokens < args.min_tokens or args.max_ratio < 1:
        parser.error("need 1 <= --min-tokens <= --max-tokens and --max-ratio >= 1")
    if args.valid_size < 0 or args.test_size < 1:
        parser.error("need --valid-size >= 0 and --test-size >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        build_corpus(args)
    except CorpusError as error:
        print(f"build_corpus.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
