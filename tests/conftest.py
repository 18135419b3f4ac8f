"""Shared fixtures: tiny binarized data and a briefly trained CMLM.

Everything runs on CPU in fp32 and in-process where possible (a fairseq
CLI subprocess costs ~3.5 s of start-up, REFERENCE §1).
"""
import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)

import tiny_data  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bin(tmp_path_factory):
    """Binarized tiny En->De data (joined dictionary)."""
    base = tmp_path_factory.mktemp("tiny")
    raw = tiny_data.write_raw(str(base / "raw"))
    return tiny_data.binarize(raw, str(base / "bin"))


def train_args(data, save_dir, arch="cmlm_tiny", criterion="cmlm_loss", max_update=150, extra=()):
    """argv for an in-process ``fairseq-train`` of a plugin model."""
    return [
        data, "--user-dir", os.path.join(ROOT, "nat_plugins"), "--task", "nat_translation",
        "--arch", arch, "--criterion", criterion, "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
        "--lr", "5e-3", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "30",
        "--max-tokens", "2048", "--max-update", str(max_update), "--save-dir", save_dir,
        "--no-epoch-checkpoints", "--log-interval", "50", "--cpu", "--seed", "1",
        "--num-workers", "0", "--disable-validation", *extra,
    ]


def run_train(argv):
    from fairseq import options
    from fairseq_cli import train

    parser = options.get_training_parser()
    train.main(options.parse_args_and_arch(parser, argv))


def run_generate(argv, capsys=None):
    """In-process ``fairseq-generate``; returns its stdout when ``capsys`` is given."""
    from fairseq import options
    from fairseq_cli import generate

    parser = options.get_generation_parser()
    args = options.parse_args_and_arch(parser, argv)
    generate.main(args)
    if capsys is not None:
        return capsys.readouterr().out
    return None


@pytest.fixture(scope="session")
def tiny_cmlm(tiny_bin, tmp_path_factory):
    """A CMLM trained for a few hundred updates on the tiny data: path to checkpoint_last.pt."""
    save = str(tmp_path_factory.mktemp("cmlm_ckpt"))
    run_train(train_args(tiny_bin, save, max_update=300))
    return os.path.join(save, "checkpoint_last.pt")


def hypotheses(generate_output):
    """{id: hypothesis string} from fairseq-generate output."""
    out = {}
    for line in generate_output.splitlines():
        if line.startswith("H-"):
            head, _score, text = (line.split("\t") + [""])[:3]
            out[int(head[2:])] = text
    return out
