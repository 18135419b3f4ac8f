"""DA-Transformer end to end through fairseq's own entry points (in-process): train with
glancing and a sampled upsample range, generate with every strategy, score."""
import os

import pytest
import torch

from conftest import hypotheses, run_generate, run_train, train_args

from dag_cli import gen_args, generate_and_score
from nat_plugins.errors import NATUserError

STRATEGY_FLAGS = {
    "dag_greedy": [],
    "dag_lookahead": ["--decode-beta", "1.0"],
    "dag_joint_viterbi": ["--decode-viterbi-beta", "1.0"],
    "dag_sample": ["--decode-temperature", "0.5", "--decode-top-p", "0.9", "--decode-seed", "1"],
    "dag_sample_lennorm": ["--decode-samples", "4", "--decode-seed", "1"],
}


@pytest.fixture(scope="module")
def tiny_dat(tiny_bin, tmp_path_factory):
    save = str(tmp_path_factory.mktemp("dat_ckpt"))
    run_train(train_args(tiny_bin, save, arch="dat_tiny", criterion="dag_loss", max_update=20,
                         # unframed: after 20 updates a framed graph's lookahead still jumps from <s> to </s>
                         # (empty outputs), as DA-Transformer's would; framed decoding is tested on hand DAGs
                         # (tests/decoding) and trained in the reproduction suite
                         extra=("--upsample-scale", "3~4", "--glance-p", "0.5:0.1@1k", "--log-interval", "10",
                                "--dag-frame-target", "off")))
    return os.path.join(save, "checkpoint_last.pt")


def test_checkpoint_records_updates_for_the_glancing_schedule(tiny_dat):
    state = torch.load(tiny_dat, weights_only=True)
    # fairseq restores this count on resume and hands it to the model (and so to
    # dag_loss's schedule) through set_num_updates.
    assert state["optimizer_history"][-1]["num_updates"] == 20
    assert state["cfg"]["model"].upsample_scale == "3~4"


@pytest.mark.parametrize("strategy", sorted(STRATEGY_FLAGS))
def test_every_strategy_generates_and_scores(tiny_bin, tiny_dat, strategy, capsys, tmp_path):
    generate_and_score(tiny_bin, tiny_dat, capsys, tmp_path, "--decoding-strategy", strategy,
                       *STRATEGY_FLAGS[strategy])


def test_sampling_with_a_seed_is_reproducible(tiny_bin, tiny_dat, capsys):
    args = gen_args(tiny_bin, tiny_dat, "--decoding-strategy", "dag_sample", "--decode-seed", "7")
    assert hypotheses(run_generate(args, capsys)) == hypotheses(run_generate(args, capsys))


def test_decode_upsample_scale_must_match_training(tiny_bin, tiny_dat, capsys):
    # inside the trained range: fine
    run_generate(gen_args(tiny_bin, tiny_dat, "--decode-upsample-scale", "3"), capsys)
    with pytest.raises(NATUserError, match="upsample-scale"):
        run_generate(gen_args(tiny_bin, tiny_dat, "--decode-upsample-scale", "8"), capsys)
    with pytest.raises(NATUserError, match="length-beam"):
        run_generate(gen_args(tiny_bin, tiny_dat, "--length-beam", "2"), capsys)
