"""SUNDAE end to end through fairseq's entry points: train -> generate (every
decoding strategy and option) -> score, on the tiny synthetic data."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, hypotheses, run_generate, run_train, train_args


@pytest.fixture(scope="module")
def tiny_sundae(tiny_bin, tmp_path_factory):
    save = str(tmp_path_factory.mktemp("sundae_ckpt"))
    run_train(train_args(tiny_bin, save, arch="sundae_tiny", criterion="sundae_loss", max_update=120))
    return os.path.join(save, "checkpoint_last.pt")


def gen_args(data, path, *extra):
    return [data, "--user-dir", os.path.join(ROOT, "nat_plugins"), "--task", "nat_translation", "--path", path,
            "--batch-size", "40", "--cpu", "--gen-subset", "test", "--decode-seed", "1", *extra]


def bleu_of(out):
    line = [l for l in out.splitlines() if "BLEU4 =" in l][-1]
    return float(line.split("BLEU4 = ")[1].split(",")[0])


STRATEGIES = {
    "sample": ("--decode-temperature", "0.5", "--decode-iterations", "6"),
    "argmax_unrolled": ("--decoding-strategy", "sundae_argmax_unrolled", "--argmax-unrolled-rho", "0.3",
                        "--decode-iterations", "4"),
    "argmax_rho0_early_stop": ("--decoding-strategy", "sundae_argmax_unrolled", "--argmax-unrolled-rho", "0",
                               "--decode-early-stop", "--decode-iterations", "8"),
    "subset_update": ("--decode-temperature", "0.5", "--sundae-update-proportion", "0.5",
                      "--decode-iterations", "8"),
    "rerank_n_samples": ("--decode-temperature", "0.5", "--decode-samples", "4", "--length-beam", "2",
                         "--decode-iterations", "6"),
    "sample_early_stop": ("--decode-temperature", "0.3", "--decode-early-stop", "--decode-iterations", "8"),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_decoding_strategy_translates_the_tiny_task(tiny_bin, tiny_sundae, capsys, name):
    out = run_generate(gen_args(tiny_bin, tiny_sundae, *STRATEGIES[name]), capsys)
    assert len(hypotheses(out)) == 40
    # A briefly trained 1-layer model gets well clear of an untrained one (~0).
    assert bleu_of(out) > 10, name


def test_seeded_sampling_is_reproducible(tiny_bin, tiny_sundae, capsys):
    args = gen_args(tiny_bin, tiny_sundae, "--decode-temperature", "0.8", "--decode-samples", "2")
    assert hypotheses(run_generate(args, capsys)) == hypotheses(run_generate(args, capsys))


def test_step_history_is_printed(tiny_bin, tiny_sundae, capsys):
    out = run_generate(gen_args(tiny_bin, tiny_sundae, "--decode-iterations", "3", "--decode-temperature", "0.5",
                                "--retain-iter-history", "--print-step"), capsys)
    lines = out.splitlines()
    assert any(l.startswith("E-0_0\t") for l in lines) and any(l.startswith("E-0_3\t") for l in lines)


def test_score_script_on_generate_output(tiny_bin, tiny_sundae, capsys, tmp_path):
    out = run_generate(gen_args(tiny_bin, tiny_sundae, "--decode-temperature", "0.5"), capsys)
    path = tmp_path / "gen.out"
    path.write_text(out)
    res = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "score.py"), str(path), "--json"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    scores = json.loads(res.stdout)
    assert any("bleu" in k.lower() for k in scores)
    assert any("chrf" in k.lower() for k in scores)


def test_without_length_prediction_and_with_l1_only(tiny_bin, tmp_path, capsys):
    save = str(tmp_path / "nolen")
    run_train(train_args(tiny_bin, save, arch="sundae_tiny", criterion="sundae_loss", max_update=10,
                         extra=("--sundae-no-length-prediction", "--sundae-max-canvas", "12", "--unroll-steps", "1")))
    out = run_generate(gen_args(tiny_bin, os.path.join(save, "checkpoint_last.pt"), "--decode-iterations", "2",
                                "--length-beam", "3"), capsys)
    assert len(hypotheses(out)) == 40


def test_wrong_strategy_family_is_a_user_error(tiny_bin, tiny_sundae):
    from nat_plugins.errors import NATUserError

    with pytest.raises(NATUserError):
        run_generate(gen_args(tiny_bin, tiny_sundae, "--decoding-strategy", "mask_predict"))
