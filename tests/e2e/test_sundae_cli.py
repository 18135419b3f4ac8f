"""SUNDAE end to end through fairseq's entry points: train -> generate (every
decoding strategy and option) -> score, on the tiny synthetic data."""
import argparse
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, hypotheses, run_generate, run_train, train_args


@pytest.fixture(scope="module")
def tiny_sundae(tiny_bin, tmp_path_factory):
    save = str(tmp_path_factory.mktemp("sundae_ckpt"))
    # 200 updates: with the canvas slack, 120 left sampling at BLEU 0-15 on this data (80 at 200).
    run_train(train_args(tiny_bin, save, arch="sundae_tiny", criterion="sundae_loss", max_update=200))
    return os.path.join(save, "checkpoint_last.pt")


def gen_args(data, path, *extra, defaults=False):
    """fairseq-generate argv; one sample per length unless ``defaults`` (keeps the tests fast)."""
    samples = () if defaults else ("--decode-samples", "1")
    return [data, "--user-dir", os.path.join(ROOT, "nat_plugins"), "--task", "nat_translation", "--path", path,
            "--batch-size", "40", "--cpu", "--gen-subset", "test", "--decode-seed", "1", *samples, *extra]


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
    res = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "evaluation", "score.py"), str(path), "--json"],
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


# ---- per-family decoding defaults (§3.1) and checkpoints of earlier versions ---------
NEW_OPTIONS = ("sundae_canvas_slack", "sundae_noise_symbols", "sundae_read_out", "sundae_decode_samples",
               "sundae_decode_temperature")


def per_source(out):
    """{id: number of H- lines} of fairseq-generate output."""
    counts = {}
    for line in out.splitlines():
        if line.startswith("H-"):
            key = int(line.split("\t")[0][2:])
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_model_decoding_defaults_reach_fairseq_generate(tiny_bin, tiny_sundae, capsys):
    def generate(*extra):
        return run_generate(gen_args(tiny_bin, tiny_sundae, "--nbest", "16", "--decode-iterations", "3", *extra,
                                     defaults=True), capsys)

    def lines(out):
        return [l for l in out.splitlines() if l.startswith(("H-", "P-"))]

    bare = generate()
    # sundae_tiny: n = 4 candidates (one length), at tau = 0.5.
    assert set(per_source(bare).values()) == {4}
    assert lines(bare) == lines(generate("--decode-samples", "4", "--decode-temperature", "0.5"))
    # The user's flags still win (and tau matters, so the equality above is not vacuous).
    hot = generate("--decode-samples", "4", "--decode-temperature", "1.0")
    assert set(per_source(hot).values()) == {4} and lines(hot) != lines(bare)


def test_decoding_defaults_are_visible_in_generate_help(tiny_bin, capsys):
    from fairseq import options
    from fairseq.models import ARCH_CONFIG_REGISTRY

    parser = options.get_generation_parser()
    with pytest.raises(SystemExit):
        options.parse_args_and_arch(parser, [tiny_bin, "--user-dir", os.path.join(ROOT, "nat_plugins"), "--task",
                                             "nat_translation", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = {}
    for arch in ("sundae_base", "sundae_small", "sundae_tiny"):
        ns = argparse.Namespace()
        ARCH_CONFIG_REGISTRY[arch](ns)
        defaults[arch] = (ns.sundae_decode_samples, ns.sundae_decode_temperature)
    base, small, tiny = defaults["sundae_base"], defaults["sundae_small"], defaults["sundae_tiny"]
    assert small == tiny and base[1] == small[1]
    assert f"SUNDAE: {base[0]} for sundae_base, {small[0]} for sundae_small/sundae_tiny" in text
    assert f"SUNDAE: {base[1]}, in the paper's 0.1-0.6" in text


def test_checkpoint_of_an_earlier_version_decodes_as_before(tiny_bin, tiny_sundae, tmp_path, capsys):
    """A checkpoint without the newer options (saved by an earlier version) keeps
    tau = 1, n = 1, no canvas slack, the earlier noise symbols and cut-at-end."""
    import torch
    from fairseq import checkpoint_utils

    state = torch.load(tiny_sundae, map_location="cpu")
    for key in NEW_OPTIONS:
        delattr(state["cfg"]["model"], key)
    old = str(tmp_path / "earlier.pt")
    torch.save(state, old)
    models, _ = checkpoint_utils.load_model_ensemble([old])
    model = models[0]
    assert (model.canvas_slack, model.read_out_rule, model.default_decode_samples,
            model.default_decode_temperature) == (0.0, "cut-at-end", 1, 1.0)
    assert int(model.noise_symbols.min()) >= 4  # no special symbols
    out = run_generate(gen_args(tiny_bin, old, "--nbest", "16", "--decode-iterations", "3", defaults=True), capsys)
    assert set(per_source(out).values()) == {1}
