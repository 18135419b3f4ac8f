"""Tiny synthetic parallel data for end-to-end tests.

A word-for-word "translation" (``w7`` -> ``W7``) with one local reordering
rule, so a model must use the source to score well but a 1-layer model
learns it in a few hundred updates.
"""
import os
import random


def make_pairs(n, seed=0, min_len=3, max_len=8, vocab=24):
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        src = [f"w{rng.randrange(vocab)}" for _ in range(rng.randint(min_len, max_len))]
        tgt = [w.upper() for w in src]
        # swap adjacent pairs starting with w0: a little reordering
        for i in range(len(tgt) - 1):
            if src[i] == "w0":
                tgt[i], tgt[i + 1] = tgt[i + 1], tgt[i]
        pairs.append((" ".join(src), " ".join(tgt)))
    return pairs


def write_raw(folder, splits=(("train", 600), ("valid", 40), ("test", 40)), seed=0):
    os.makedirs(folder, exist_ok=True)
    for i, (split, n) in enumerate(splits):
        pairs = make_pairs(n, seed=seed + i)
        with open(os.path.join(folder, f"{split}.en"), "w") as fs, open(os.path.join(folder, f"{split}.de"), "w") as ft:
            for s, t in pairs:
                fs.write(s + "\n")
                ft.write(t + "\n")
    return folder


def binarize(raw, dest, workers=1):
    from fairseq import options
    from fairseq_cli import preprocess

    parser = options.get_preprocessing_parser()
    args = parser.parse_args([
        "--source-lang", "en", "--target-lang", "de",
        "--trainpref", os.path.join(raw, "train"), "--validpref", os.path.join(raw, "valid"),
        "--testpref", os.path.join(raw, "test"), "--destdir", dest, "--joined-dictionary",
        "--workers", str(workers),
    ])
    preprocess.main(args)
    return dest
