"""The Python helpers of the WMT14 recipes: corpus cleaning, the dry-run stand-in
corpus, and the one-process decode-and-score driver (its pure parts; the
recipes' dry run in tests/e2e/test_wmt14_recipes.py runs it for real)."""
import json
import os
import tarfile
import time

import pytest

import clean_corpus
import decode_and_score
import wmt14_dry_run_corpus


@pytest.mark.parametrize(
    "src, tgt, verdict",
    [
        (250, 250, None), (1, 1, None),  # bounds are inclusive
        (251, 250, "length"), (0, 3, "length"), (3, 0, "length"),
        (3, 2, None), (2, 3, None),  # ratio exactly 1.5 is kept, as in clean-corpus-n
        (4, 2, "ratio"), (2, 4, "ratio"), (16, 10, "ratio"),
    ],
)
def test_pair_verdict_matches_clean_corpus_n(src, tgt, verdict):
    assert clean_corpus.pair_verdict(src, tgt, ratio=1.5, min_len=1, max_len=250) == verdict


def test_lengths_are_moses_tokens_of_the_normalised_text():
    # "Hello, world!" is 2 words but 4 Moses tokens: against a 2-token side the
    # ratio is 2 (dropped); counting words would keep the pair.
    kept, stats = clean_corpus.clean(["Hello, world!", "a small house"], ["Hallo Welt", "ein kleines Haus"], "en", "de")
    assert kept == [("a small house", "ein kleines Haus")]
    assert stats == {"input": 2, "kept": 1, "length": 0, "ratio": 1}


def test_only_newlines_end_lines(tmp_path):
    # Web text holds U+2028, \r, \x0c...; str.splitlines() (used by the later
    # steps) would split there and misalign the two sides.
    path = tmp_path / "side.en"
    path.write_bytes("one\u2028two\nthree\rfour\x0cfive\nlast".encode("utf-8"))
    lines = clean_corpus.read_corpus_lines(str(path))
    assert lines == ["one two", "three four five", "last"]
    assert all(line.splitlines() == [line] for line in lines)


def test_clean_cli_writes_raw_lines_and_stats(tmp_path):
    (tmp_path / "in.en").write_text("A red car .\n\nThe house, the garden and the tree .\n", encoding="utf-8")
    (tmp_path / "in.de").write_text("Ein rotes Auto .\nLeer\nDas Haus .\n", encoding="utf-8")
    argv = ["--prefix", str(tmp_path / "in"), "--out-prefix", str(tmp_path / "out"), "--workers", "1",
            "--stats", str(tmp_path / "stats.json")]
    assert clean_corpus.main(argv) == 0
    assert (tmp_path / "out.en").read_text(encoding="utf-8") == "A red car .\n"
    assert (tmp_path / "out.de").read_text(encoding="utf-8") == "Ein rotes Auto .\n"
    # the empty English line (length) and 9 tokens against 3 (ratio) are dropped
    assert json.loads((tmp_path / "stats.json").read_text()) == {"input": 3, "kept": 1, "length": 1, "ratio": 1}
    (tmp_path / "in.de").write_text("Ein rotes Auto .\n", encoding="utf-8")
    assert clean_corpus.main(argv) == 2  # sides of different lengths


def test_dry_run_corpus_is_deterministic_and_shaped_like_the_downloads(tmp_path, monkeypatch):
    first = wmt14_dry_run_corpus.write_corpus(str(tmp_path / "a"))
    # A later clock must not change the bytes (gzip headers carry a timestamp).
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    second = wmt14_dry_run_corpus.write_corpus(str(tmp_path / "b"))
    assert [open(p, "rb").read() for p in first] == [open(p, "rb").read() for p in second]
    with tarfile.open(tmp_path / "a" / "training-parallel-nc-v9.tgz") as tar:
        assert sorted(tar.getnames()) == ["training/news-commentary-v9.de-en.de", "training/news-commentary-v9.de-en.en"]
    with tarfile.open(tmp_path / "a" / "training-parallel-commoncrawl.tgz") as tar:
        en = tar.extractfile("commoncrawl.de-en.en").read().decode().split("\n")[:-1]
        de = tar.extractfile("commoncrawl.de-en.de").read().decode().split("\n")[:-1]
    assert len(en) == len(de) == 240
    assert sum(1 for line in de if not line) == wmt14_dry_run_corpus.DIRTY["empty_side"]
    assert (tmp_path / "a" / "newstest2014.de").read_text(encoding="utf-8").count("\n") == 40


def test_decode_jobs_find_their_checkpoints_and_report(tmp_path):
    assert decode_and_score.checkpoints_of(["data", "--path", "a.pt:b.pt", "--beam", "4"]) == ["a.pt", "b.pt"]
    assert decode_and_score.checkpoints_of(["data", "--path=c.pt"]) == ["c.pt"]
    with pytest.raises(decode_and_score.JobError):
        decode_and_score.checkpoints_of(["data", "--beam", "4"])
    results = [
        {"model": "dat", "setting": "lookahead", "bleu_tok": 26.571, "sacrebleu": 25.9, "chrf": 55.0,
         "sacrebleu_signature": "nrefs:1|tok:13a", "sentences_per_second": 123.45},
        {"model": "dat", "setting": "joint_viterbi", "bleu_tok": 27.0, "sacrebleu": 26.0, "chrf": 56.0,
         "sacrebleu_signature": "nrefs:1|tok:13a", "sentences_per_second": None},
    ]
    report = decode_and_score.markdown_report(results, "T")
    assert "| dat | lookahead | 26.57 | 25.90 | 55.00 | 123.5 |" in report
    assert "| dat | joint_viterbi | 27.00 | 26.00 | 56.00 | - |" in report
    assert report.rstrip().endswith("sacreBLEU signature: nrefs:1|tok:13a")


def test_averaging_is_skipped_when_up_to_date(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "checkpoint_1_2.pt").write_bytes(b"not a checkpoint")
    output = tmp_path / "averaged.pt"
    output.write_bytes(b"older average")
    os.utime(folder / "checkpoint_1_2.pt", (1000, 1000))
    messages = []
    decode_and_score.average("best", 5, str(folder), str(output), log=messages.append)
    assert "kept" in messages[0] and output.read_bytes() == b"older average"
    os.utime(output, (500, 500))  # now older than the checkpoint: averaging runs (and fails on the fake file)
    with pytest.raises(decode_and_score.JobError):
        decode_and_score.average("best", 5, str(folder), str(output), log=messages.append)
    with pytest.raises(decode_and_score.JobError, match="MODE must be"):
        decode_and_score.average("first", 5, str(folder), str(output))
