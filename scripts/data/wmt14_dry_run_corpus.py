#!/usr/bin/env python3
"""Write a tiny made-up stand-in for the WMT14 En-De downloads (for dry runs).

``examples/wmt14_en_de/prepare.sh --dry-run`` calls this instead of
downloading, so that everything after the download (extraction, line-count
checks, cleaning, tokenization, BPE, binarization, and every later recipe)
runs exactly as in a real run, only on a few hundred sentences.  The files
have the names and archive layout of the real ones:

* ``training-parallel-europarl-v7.tgz``  -> ``training/europarl-v7.de-en.{de,en}``
* ``training-parallel-commoncrawl.tgz``  -> ``commoncrawl.de-en.{de,en}``
* ``training-parallel-nc-v9.tgz``        -> ``training/news-commentary-v9.de-en.{de,en}``
* ``newstest2013.{en,de}``, ``newstest2014.{en,de}``: what
  ``sacrebleu -t wmt13 / wmt14/full -l en-de --echo src|ref`` would write.

The text is generated from a small invented lexicon (no real corpus text):
word-by-word "translations" with German compounds and hyphenated words, so
that Moses tokenization, BPE and compound-split BLEU all have something to
do.  A few pairs are deliberately dirty (an empty side, a length ratio above
1.5, more than 250 tokens) so that the cleaning step has to drop them; the
line counts are fixed (:data:`SIZES`, :data:`DIRTY`) and ``prepare.sh``
checks them.  Output is identical on every run (fixed seeds, fixed archive
timestamps).
"""
import argparse
import gzip
import io
import os
import random
import sys
import tarfile

#: English -> German, a few entries hyphenated on one side only.
LEXICON = {
    "the": "die", "house": "Haus", "garden": "Garten", "dog": "Hund", "cat": "Katze",
    "car": "Auto", "tree": "Baum", "city": "Stadt", "river": "Fluss", "council": "Rat",
    "report": "Bericht", "e-mail": "E-Mail", "well-known": "wohl-bekannte", "red": "rote",
    "small": "kleine", "old": "alte", "green": "grüne", "new": "neue", "fire": "Feuer",
    "brigade": "Wehr", "sees": "sieht", "has": "hat", "needs": "braucht", "builds": "baut",
    "and": "und", "with": "mit", "today": "heute", "not": "nicht", "member": "Mitglied",
    "state": "Staat", "bus": "Bus", "stop": "Haltestelle", "world": "Welt", "cup": "Pokal",
}
NOUNS = ["house", "garden", "dog", "cat", "car", "tree", "city", "river", "council", "report",
         "e-mail", "fire brigade", "member state", "bus stop", "world cup"]
ADJECTIVES = ["red", "small", "old", "green", "new", "well-known"]
VERBS = ["sees", "has", "needs", "builds"]

#: (archive, member path) and number of lines of each training corpus.
TRAIN_CORPORA = (
    ("training-parallel-europarl-v7.tgz", "training/europarl-v7.de-en", 240),
    ("training-parallel-commoncrawl.tgz", "commoncrawl.de-en", 240),
    ("training-parallel-nc-v9.tgz", "training/news-commentary-v9.de-en", 120),
)
#: Dirty pairs written into the commoncrawl stand-in (included in its 240 lines).
DIRTY = {"empty_side": 2, "ratio": 3, "too_long": 1}
TEST_SETS = (("newstest2013", 40), ("newstest2014", 40))
SIZES = {name: n for _, name, n in TRAIN_CORPORA} | dict(TEST_SETS)


def translate(words):
    """Word-by-word German for English ``words``; compounds become one German word."""
    out, i = [], 0
    while i < len(words):
        pair = " ".join(words[i:i + 2])
        if pair in ("fire brigade", "member state", "bus stop", "world cup"):
            first, second = (LEXICON[w] for w in words[i:i + 2])
            out.append(first + second.lower())  # German writes compounds as one word
            i += 2
        else:
            out.append(LEXICON[words[i]])
            i += 1
    return out


def sentence(rng):
    """One English sentence and its German counterpart (both untokenized)."""
    words = ["the"]
    if rng.random() < 0.6:
        words.append(rng.choice(ADJECTIVES))
    words += rng.choice(NOUNS).split() + [rng.choice(VERBS), "the"] + rng.choice(NOUNS).split()
    if rng.random() < 0.3:
        words += ["with", "the"] + rng.choice(NOUNS).split()
    if rng.random() < 0.2:
        words.append("today")
    english = " ".join(words)
    german = " ".join(translate(words))
    return english[0].upper() + english[1:] + ".", german[0].upper() + german[1:] + "."


def clean_pairs(rng, count):
    return [sentence(rng) for _ in range(count)]


def dirty_pairs(rng):
    """Pairs that Moses clean-corpus-n (ratio 1.5, lengths 1..250) must drop."""
    pairs = []
    for _ in range(DIRTY["empty_side"]):
        pairs.append((sentence(rng)[0], ""))
    for _ in range(DIRTY["ratio"]):
        english, german = sentence(rng)
        pairs.append((english, " ".join([german] * 3)))  # 3x as long: ratio > 1.5
    for _ in range(DIRTY["too_long"]):
        english, german = zip(*(sentence(rng) for _ in range(40)))  # > 250 tokens per side
        pairs.append((" ".join(english), " ".join(german)))
    return pairs


def _tar_member(tar, name, text):
    data = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # reproducible archives
    tar.addfile(info, io.BytesIO(data))


def _lines(items):
    return "".join(item + "\n" for item in items)


def write_corpus(out_dir, seed=0):
    """Write the archives and test sets into ``out_dir``; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for index, (archive, member, count) in enumerate(TRAIN_CORPORA):
        rng = random.Random(seed * 100 + index)
        dirty = dirty_pairs(rng) if member.startswith("commoncrawl") else []
        pairs = clean_pairs(rng, count - len(dirty)) + dirty
        rng.shuffle(pairs)
        path = os.path.join(out_dir, archive)
        # The gzip header carries a timestamp; pin it, or two runs a second apart differ.
        with gzip.GzipFile(path, "wb", mtime=0) as packed, tarfile.open(fileobj=packed, mode="w") as tar:
            _tar_member(tar, f"{member}.en", _lines(en for en, _ in pairs))
            _tar_member(tar, f"{member}.de", _lines(de for _, de in pairs))
        written.append(path)
    for index, (name, count) in enumerate(TEST_SETS):
        pairs = clean_pairs(random.Random(seed * 100 + 50 + index), count)
        for lang, side in (("en", 0), ("de", 1)):
            path = os.path.join(out_dir, f"{name}.{lang}")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(_lines(pair[side] for pair in pairs))
            written.append(path)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", required=True, help="folder for the stand-in downloads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in write_corpus(args.out_dir, args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
