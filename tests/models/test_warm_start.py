"""``--init-from-ar``: a NAT model starts from an AR baseline's encoder and token embeddings.

A tiny fairseq ``transformer`` (the cmlm_tiny encoder's sizes) is trained for 2 updates on the tests' tiny
data.  Checks: after the task builds a CMLM with the flag, its encoder equals the AR's and its decoder layers
equal those of the same model built without the flag (same seed); a run that will resume, and a model built
from a checkpoint (inference), do not read the AR file; a real training resumes without it; a different
dictionary, encoder depth or width is a one-line error (in-process and through the CLI).
"""
import copy
import os
import subprocess
import sys

import pytest
import torch

from tests import root_conftest, tiny_data

_root = root_conftest.load()  # tests/conftest.py by path: a bare "import conftest" may get another folder's
ROOT, run_train, train_args = _root.ROOT, _root.run_train, _root.train_args

pytest.importorskip("fairseq")

from nat_plugins.checkpoint_io import read_checkpoint  # noqa: E402
from nat_plugins.errors import NATUserError  # noqa: E402
from nat_plugins.modules.warm_start import copy_ar_encoder, resume_checkpoint  # noqa: E402

AR_SIZES = ["--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "32", "--decoder-embed-dim", "32",
            "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2",
            "--decoder-attention-heads", "2", "--share-all-embeddings"]


def _train_ar(data, save_dir, updates=2):
    run_train([
        data, "--user-dir", os.path.join(ROOT, "nat_plugins"), "--task", "translation", "--arch", "transformer",
        *AR_SIZES, "--criterion", "cross_entropy", "--optimizer", "adam", "--lr", "5e-3", "--max-tokens", "2048",
        "--max-update", str(updates), "--save-dir", save_dir, "--no-epoch-checkpoints", "--cpu", "--seed", "3",
        "--num-workers", "0", "--disable-validation", "--log-format", "simple",
    ])
    return os.path.join(save_dir, "checkpoint_last.pt")


@pytest.fixture(scope="module")
def ar_checkpoint(tiny_bin, tmp_path_factory):
    return _train_ar(tiny_bin, str(tmp_path_factory.mktemp("ar")))


def _build(data, save_dir, extra=(), from_checkpoint=False, seed=7):
    """The CMLM of a training run with ``extra`` flags, built as fairseq-train builds it."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, train_args(data, save_dir, extra=extra))
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(seed)
    return task.build_model(cfg.model, from_checkpoint=from_checkpoint)


def _encoder_equal(model, ar_weights):
    own = model.state_dict()
    keys = [k for k in own if k.startswith("encoder.") and k in ar_weights]
    assert len(keys) > 10
    return all(torch.equal(own[k], ar_weights[k]) for k in keys)


def test_encoder_and_embeddings_copied_decoder_untouched(tiny_bin, ar_checkpoint, tmp_path):
    ar = read_checkpoint(ar_checkpoint)["model"]
    warm = _build(tiny_bin, str(tmp_path / "a"), ["--init-from-ar", ar_checkpoint])
    cold = _build(tiny_bin, str(tmp_path / "b"))
    assert _encoder_equal(warm, ar) and not _encoder_equal(cold, ar)
    # shared embeddings: the decoder reads the AR's token embeddings too
    assert torch.equal(warm.decoder.embed_tokens.weight, ar["encoder.embed_tokens.weight"])
    w, c = warm.state_dict(), cold.state_dict()
    rest = [k for k in w if not k.startswith("encoder.") and "embed_tokens" not in k and "output_projection" not in k]
    assert any(k.startswith("decoder.layers.") for k in rest) and any(k.startswith("length_predictor") for k in rest)
    assert all(torch.equal(w[k], c[k]) for k in rest)


def test_no_warm_start_when_resuming_or_at_inference(tiny_bin, tmp_path):
    missing = str(tmp_path / "no_such_ar.pt")
    save = tmp_path / "resume"
    save.mkdir()
    (save / "checkpoint_last.pt").write_bytes(b"")  # its content does not matter: only that fairseq resumes
    _build(tiny_bin, str(save), ["--init-from-ar", missing])  # resuming: the AR file is not read
    _build(tiny_bin, str(tmp_path / "new"), ["--init-from-ar", missing], from_checkpoint=True)
    with pytest.raises(NATUserError, match="no such file"):
        _build(tiny_bin, str(tmp_path / "new"), ["--init-from-ar", missing])


def test_resume_rule_follows_fairseq(tmp_path):
    class Args:
        save_dir = str(tmp_path)
        restore_file = "checkpoint_last.pt"

    assert resume_checkpoint(Args) is None
    (tmp_path / "checkpoint_1_500.pt").write_bytes(b"x")
    assert resume_checkpoint(Args) == str(tmp_path / "checkpoint_1_500.pt")
    Args.restore_file = str(tmp_path / "elsewhere.pt")
    assert resume_checkpoint(Args) is None


def test_training_resumes_without_reinit(tiny_bin, ar_checkpoint, tmp_path):
    save = str(tmp_path / "nat")
    run_train(train_args(tiny_bin, save, max_update=2, extra=["--init-from-ar", ar_checkpoint]))
    first = read_checkpoint(os.path.join(save, "checkpoint_last.pt"))["model"]
    ar = read_checkpoint(ar_checkpoint)["model"]
    assert not _encoder_equal_dict(first, ar)  # 2 updates moved the copied weights, as training should
    # resume with an AR path that no longer exists: nothing is re-initialised, nothing fails
    run_train(train_args(tiny_bin, save, max_update=3, extra=["--init-from-ar", str(tmp_path / "gone.pt")]))
    state = read_checkpoint(os.path.join(save, "checkpoint_last.pt"))
    assert state["optimizer_history"][-1]["num_updates"] == 3


def _encoder_equal_dict(a, b):
    keys = [k for k in a if k.startswith("encoder.layers.") and k in b]
    return all(torch.equal(a[k], b[k]) for k in keys)


def test_mismatches_are_one_line_errors(tiny_bin, ar_checkpoint, tmp_path):
    model = _build(tiny_bin, str(tmp_path / "m"))
    state = read_checkpoint(ar_checkpoint)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def error(changed):
        with pytest.raises(NATUserError) as info:
            copy_ar_encoder(model, changed, source_lang="en")
        assert "\n" not in str(info.value)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-copied
        return str(info.value)

    smaller = copy.deepcopy(state)
    smaller["model"]["encoder.embed_tokens.weight"] = smaller["model"]["encoder.embed_tokens.weight"][:-1]
    assert "dictionary" in error(smaller)
    deeper = copy.deepcopy(state)
    deeper["model"]["encoder.layers.1.fc1.weight"] = torch.zeros(64, 32)
    assert "encoders differ" in error(deeper)
    wider = copy.deepcopy(state)
    wider["model"]["encoder.layers.0.fc1.weight"] = torch.zeros(128, 32)
    assert "shape" in error(wider)
    # same size, other symbols: read from the AR's data directory when it still exists
    other = tmp_path / "other_bin"
    other.mkdir()
    lines = open(os.path.join(tiny_bin, "dict.en.txt"), encoding="utf-8").read().splitlines()
    (other / "dict.en.txt").write_text("\n".join(f"x{line}" for line in lines) + "\n", encoding="utf-8")
    renamed = copy.deepcopy(state)
    renamed["cfg"]["task"]["data"] = str(other)
    assert "another dictionary" in error(renamed)


def test_cli_mismatched_dictionary_is_one_line(tmp_path):
    raw = tmp_path / "raw"
    tiny_data.write_raw(str(raw), splits=(("train", 60), ("valid", 8), ("test", 8)), seed=5)
    for split in ("train", "valid", "test"):  # another vocabulary: every source word renamed
        path = raw / f"{split}.en"
        path.write_text(path.read_text().replace("w", "v"))
    other_bin = tiny_data.binarize(str(raw), str(tmp_path / "bin"))
    ar = _train_ar(other_bin, str(tmp_path / "ar"), updates=1)
    main_bin = tiny_data.binarize(tiny_data.write_raw(str(tmp_path / "raw2")), str(tmp_path / "bin2"))
    argv = train_args(main_bin, str(tmp_path / "nat"), max_update=1, extra=["--init-from-ar", ar])
    result = subprocess.run([sys.executable, "-m", "fairseq_cli.train", *argv], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("nat_plugins: error: --init-from-ar:") and "dictionary" in last
