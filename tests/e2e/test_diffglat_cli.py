"""DiffGLAT end to end through fairseq's own entry points (in-process): train with the modality
process after a short warm-up and residual glancing, generate with the DAG strategies, score."""
import logging
import os

import pytest
import torch

from conftest import run_generate, run_train, train_args

from dag_cli import gen_args, generate_and_score
from nat_plugins.errors import NATUserError

UPDATES = 20


@pytest.fixture(scope="module")
def tiny_diffglat(tiny_bin, tmp_path_factory):
    save = str(tmp_path_factory.mktemp("diffglat_ckpt"))
    logger = logging.getLogger()  # fairseq's progress bar logs under the logger "train"
    records, level = [], logger.level
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        run_train(train_args(tiny_bin, save, arch="diffglat_tiny", criterion="diffglat_loss", max_update=UPDATES,
                             extra=("--diffusion-warmup-updates", "5", "--glance-alpha", "0.5:0.1@10",
                                    "--glance-alpha-periodic", "--log-interval", "10", "--log-format", "simple",
                                    "--dag-frame-target", "off")))  # why: tests/e2e/test_dat_cli.py
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return os.path.join(save, "checkpoint_last.pt"), [r.getMessage() for r in records]


def test_training_runs_the_modality_process_and_logs_per_transition_losses(tiny_diffglat):
    path, messages = tiny_diffglat
    state = torch.load(path, weights_only=True)
    assert state["optimizer_history"][-1]["num_updates"] == UPDATES
    model_cfg = state["cfg"]["model"]
    assert (model_cfg.layers_per_transition, model_cfg.diffusion_iterations, model_cfg.upsample_scale) == (1, 3, "4")
    logged = " ".join(messages)
    assert "loss_t" in logged and "level" in logged and "glanced_frac" in logged
    assert "| gamma " in logged  # after 5 warm-up updates the modality process chose gammas
    assert "| y0_share " in logged


def test_generate_with_joint_viterbi_by_default_and_the_trained_iterations(tiny_bin, tiny_diffglat, capsys, tmp_path):
    path, _ = tiny_diffglat
    default = generate_and_score(tiny_bin, path, capsys, tmp_path)
    explicit = generate_and_score(tiny_bin, path, capsys, tmp_path, "--decoding-strategy", "dag_joint_viterbi",
                                   "--decode-iterations", "3")
    assert default == explicit
    generate_and_score(tiny_bin, path, capsys, tmp_path, "--decode-iterations", "1")


def test_generate_with_lookahead(tiny_bin, tiny_diffglat, capsys, tmp_path):
    generate_and_score(tiny_bin, tiny_diffglat[0], capsys, tmp_path, "--decoding-strategy", "dag_lookahead",
                        "--decode-iterations", "3")


def test_clear_errors(tiny_bin, tiny_diffglat, capsys, tmp_path):
    with pytest.raises(NATUserError, match="--decode-iterations"):
        run_generate(gen_args(tiny_bin, tiny_diffglat[0], "--decode-iterations", "0"), capsys)
    with pytest.raises(NATUserError, match="--layers-per-transition 3 must divide the 2 decoder layers"):
        run_train(train_args(tiny_bin, str(tmp_path / "bad"), arch="diffglat_tiny", criterion="diffglat_loss",
                             max_update=1, extra=("--layers-per-transition", "3")))
