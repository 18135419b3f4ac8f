"""Mini end-to-end run of the quickstart pipeline on a synthetic corpus:
prepare_data -> fairseq-train (tiny AR) -> average -> fairseq-generate
(-> fairseq-interactive) -> score.  The corpus is a few hundred word-by-word
"translations" written here, so the test needs no dictionary package."""
import os
import random
import subprocess
import sys

import pytest

import average_checkpoints
import prepare_data
import score

pytest.importorskip("fairseq")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LEXICON = {
    "the": "die", "red": "rote", "big": "große", "small": "kleine", "house": "Haus", "dog": "Hund",
    "cat": "Katze", "sees": "sieht", "has": "hat", "green": "grüne", "old": "alte", "car": "Auto",
    "tree": "Baum", "well-known": "wohl-bekannte", "garden": "Garten", "and": "und",
}


def _synthetic_corpus(raw_dir, sizes=(("train", 300), ("valid", 20), ("test", 20))):
    rng = random.Random(0)
    words = sorted(LEXICON)
    raw_dir.mkdir(parents=True)
    for split, count in sizes:
        english = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 7))) + " ." for _ in range(count)]
        german = [" ".join(LEXICON.get(w, w) for w in line.split()).replace(" .", ".") for line in english]
        (raw_dir / f"{split}.en").write_text("\n".join(english) + "\n", encoding="utf-8")
        (raw_dir / f"{split}.de").write_text("\n".join(german) + "\n", encoding="utf-8")


def _run(args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, **kwargs
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _train_in_process(argv):
    # In-process training takes ~1.5 s instead of ~5 s for a CLI start-up;
    # the CLI path that matters (loading without env vars) is tested by the
    # generate/interactive subprocesses below.
    from fairseq import options
    from fairseq_cli import train

    train.main(options.parse_args_and_arch(options.get_training_parser(), argv))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("quickstart")
    _synthetic_corpus(root / "raw")
    data_bin = root / "data-bin"
    argv = ["--raw-dir", str(root / "raw"), "--work-dir", str(root), "--dest-dir", str(data_bin)]
    assert prepare_data.main(argv + ["--bpe-merges", "40", "--workers", "1", "--quiet"]) == 0
    save_dir = root / "checkpoints"
    _train_in_process(
        [
            str(data_bin), "--task", "translation", "--arch", "transformer",
            "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "32",
            "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
            "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--share-all-embeddings",
            "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
            "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "400", "--max-update", "5",
            "--save-interval-updates", "2", "--keep-interval-updates", "3", "--no-epoch-checkpoints",
            "--save-dir", str(save_dir), "--seed", "1", "--num-workers", "0", "--log-format", "simple",
        ]
    )
    return {"root": root, "argv": argv, "data_bin": data_bin, "save_dir": save_dir}


def test_prepare_writes_interactive_files_and_caches(pipeline, capsys):
    data_bin = pipeline["data_bin"]
    for name in ("bpecodes", "dict.en.txt", "dict.de.txt", "train.en-de.en.bin", "test.en-de.de.idx", "prepare.json"):
        assert (data_bin / name).exists(), name
    tokenized = (pipeline["root"] / "tok" / "train.en").read_text(encoding="utf-8")
    assert "well @-@ known" in tokenized  # aggressive dash splitting
    before = {p: os.path.getmtime(p) for p in data_bin.iterdir()}
    assert prepare_data.main(pipeline["argv"] + ["--bpe-merges", "40", "--workers", "1", "--quiet"]) == 0
    assert capsys.readouterr().err.count("up to date, skipped") == 2 * 3 * 2 + 3  # tok + bpe, learn, binarize, copy
    assert {p: os.path.getmtime(p) for p in data_bin.iterdir()} == before


def test_mismatched_bpe_codes_are_detected(pipeline, tmp_path, capsys):
    other_codes = tmp_path / "codes"
    text = tmp_path / "text"
    text.write_text("gegenüberstellung unabhängigkeit verantwortung\n" * 50, encoding="utf-8")
    prepare_data.learn_joint_bpe([str(text)], str(other_codes), 60, quiet=True)
    sample = str(pipeline["root"] / "tok" / "train.de")
    dictionary = str(pipeline["data_bin"] / "dict.de.txt")
    assert prepare_data.main(["--check-only", str(other_codes), dictionary, sample]) == 2
    assert "do not match dictionary" in capsys.readouterr().err
    assert prepare_data.main(["--check-only", str(pipeline["data_bin"] / "bpecodes"), dictionary, sample]) == 0


def test_average_generate_score(pipeline):
    save_dir, data_bin = pipeline["save_dir"], pipeline["data_bin"]
    averaged = str(save_dir / "averaged.pt")
    assert average_checkpoints.main(["--last", "3", "--dir", str(save_dir), "--output", averaged]) == 0
    # the stop at update 5 is only in checkpoint_last.pt, so it leads the series
    assert [os.path.basename(p) for p in average_checkpoints.last_checkpoints(str(save_dir), 3)] == [
        "checkpoint_last.pt", "checkpoint_1_4.pt", "checkpoint_1_2.pt",
    ]

    import torch
    import nat_plugins.compat  # noqa: F401
    from fairseq import checkpoint_utils

    assert set(torch.load(averaged, weights_only=True)["model"]) == set(
        torch.load(str(save_dir / "checkpoint_last.pt"), weights_only=True)["model"]
    )
    assert "model" in checkpoint_utils.load_checkpoint_to_cpu(averaged)

    output = _run(
        [
            "-m", "fairseq_cli.generate", str(data_bin), "--path", averaged, "--user-dir", "nat_plugins",
            "--gen-subset", "test", "--beam", "2", "--max-len-a", "1.2", "--max-len-b", "5",
            "--batch-size", "32", "--required-batch-size-multiple", "1", "--remove-bpe",
        ]
    )
    ids, hyps, refs = score.parse_generate_lines(output.splitlines())
    assert ids == list(range(20)) and all("@@" not in r for r in refs)
    raw_refs = (pipeline["root"] / "raw" / "test.de").read_text(encoding="utf-8").splitlines()
    result = score.score_corpus(hyps, refs, lang="de", detok_refs=raw_refs)
    assert result["sentences"] == 20
    assert 0.0 <= result["bleu_tok"] <= 100.0 and 0.0 <= result["chrf"] <= 100.0


def test_interactive_with_the_written_bpe_codes(pipeline):
    data_bin = pipeline["data_bin"]
    output = _run(
        [
            "-m", "fairseq_cli.interactive", str(data_bin), "--path", str(pipeline["save_dir"] / "checkpoint_last.pt"),
            "--user-dir", "nat_plugins", "-s", "en", "-t", "de", "--tokenizer", "moses", "--bpe", "subword_nmt",
            "--bpe-codes", str(data_bin / "bpecodes"), "--beam", "2", "--max-len-b", "5",
        ],
        input="the well-known red house.\n",
    )
    source = next(line for line in output.splitlines() if line.startswith("S-0\t"))
    # Moses with aggressive dash splitting, then the BPE codes, as in training
    assert score.remove_bpe(source[4:]) == "the well @-@ known red house ."
    assert "@@" in source
    assert any(line.startswith("D-0\t") for line in output.splitlines())
