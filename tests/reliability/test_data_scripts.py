"""Case 5 of issue #17: the data scripts refuse a parallel corpus whose sides
differ in line count or whose split is empty, in one line with exit status 2,
before any slow step; lines end at ``\\n`` only, as fairseq counts them."""

import pytest

from reliability_helpers import add_script_dirs

add_script_dirs()

import clean_corpus  # noqa: E402
import prepare_data  # noqa: E402
import text_files  # noqa: E402


def write_corpus(folder, sizes):
    """``{split: (source lines, target lines)}`` -> raw files of numbered sentences."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, (n_src, n_tgt) in sizes.items():
        (folder / f"{split}.en").write_text("".join(f"the house {i} is small .\n" for i in range(n_src)))
        (folder / f"{split}.de").write_text("".join(f"das Haus {i} ist klein .\n" for i in range(n_tgt)))


def prepare(tmp_path):
    return prepare_data.main(["--raw-dir", str(tmp_path / "raw"), "--work-dir", str(tmp_path / "work"),
                              "--dest-dir", str(tmp_path / "bin"), "--bpe-merges", "20", "--workers", "1", "--quiet"])


def one_error_line(capsys, prefix):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_prepare_refuses_sides_of_different_lengths(tmp_path, capsys):
    write_corpus(tmp_path / "raw", {"train": (200, 150), "valid": (5, 5), "test": (5, 5)})
    assert prepare(tmp_path) == 2
    line = one_error_line(capsys, "prepare_data.py: error:")
    assert "train.en has 200 lines but" in line and "train.de has 150" in line
    assert not (tmp_path / "bin" / "train.en-de.en.bin").exists()


@pytest.mark.parametrize("split", ["train", "test"])
def test_prepare_refuses_an_empty_split(split, tmp_path, capsys):
    sizes = {"train": (30, 30), "valid": (5, 5), "test": (5, 5)}
    sizes[split] = (0, 0)
    write_corpus(tmp_path / "raw", sizes)
    assert prepare(tmp_path) == 2
    assert "are empty" in one_error_line(capsys, "prepare_data.py: error:")


def test_line_counts_follow_newlines_only(tmp_path):
    src, tgt = tmp_path / "a.en", tmp_path / "a.de"
    src.write_bytes("one\rstill one\ntwo\u2028still two\r\nthree".encode())
    tgt.write_bytes(b"eins\nzwei\ndrei\n")
    assert text_files.check_parallel(str(src), str(tgt)) == 3
    assert text_files.read_lines(str(src)) == ["one\rstill one", "two\u2028still two", "three"]
    tgt.write_bytes(b"eins\nzwei\n")
    with pytest.raises(ValueError, match="has 3 lines but .* has 2"):
        text_files.check_parallel(str(src), str(tgt))
    src.write_bytes(b"ok\n\xff\n")
    with pytest.raises(ValueError, match=r"not UTF-8 text \(line 2"):
        text_files.read_lines(str(src))


def test_clean_corpus_refuses_empty_input_and_an_empty_result(tmp_path, capsys):
    write_corpus(tmp_path, {"empty": (0, 0), "long": (3, 3)})
    out = ["--out-prefix", str(tmp_path / "out"), "--workers", "1"]
    assert clean_corpus.main(["--prefix", str(tmp_path / "empty"), *out]) == 2
    assert "the corpus is empty" in one_error_line(capsys, "clean_corpus.py: error:")
    assert clean_corpus.main(["--prefix", str(tmp_path / "long"), *out, "--max-len", "2"]) == 2
    assert "all 3 pairs were dropped" in one_error_line(capsys, "clean_corpus.py: error:")
