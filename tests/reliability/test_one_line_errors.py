"""Cases 7-10 of issue #17: each ends in one clear ``NATUserError`` (one line,
exit status 2 on the command line) instead of a traceback, a silent no-op or
a run that trains nothing; plus the smaller script and logging cases."""
import logging
import os
import re

import pytest

from reliability_helpers import (USER_DIR, add_script_dirs, assert_one_line_error, hypotheses, run_cli, run_generate,
                                 run_train, train_args)

add_script_dirs()


@pytest.fixture(scope="module")
def tiny_ar(tiny_bin, tmp_path_factory):
    save = str(tmp_path_factory.mktemp("ar_ckpt"))
    run_train([tiny_bin, "--task", "translation", "--arch", "transformer_tiny", "--optimizer", "adam", "--lr", "5e-3",
               "--max-tokens", "2048", "--max-update", "3", "--save-dir", save, "--no-epoch-checkpoints", "--cpu",
               "--num-workers", "0", "--disable-validation", "--user-dir", USER_DIR])
    return os.path.join(save, "checkpoint_last.pt")


def gen(data, path, *extra):
    return [data, "--user-dir", USER_DIR, "--task", "nat_translation", "--path", path, "--cpu", "--gen-subset", "test",
            "--batch-size", "16", *extra]


def test_nat_checkpoint_without_the_nat_task(tiny_bin, tiny_cmlm):  # case 7
    proc = run_cli("fairseq-generate", tiny_bin, "--user-dir", USER_DIR, "--path", tiny_cmlm, "--cpu",
                   "--gen-subset", "test")
    assert_one_line_error(proc, "cmlm_tiny is a non-autoregressive model of nat_plugins: run it with --task "
                                "nat_translation")


def test_training_whose_every_target_is_too_long_for_its_graph_stops(tiny_bin, tmp_path):  # case 8
    from nat_plugins.errors import NATUserError

    save = tmp_path / "dat"
    argv = train_args(tiny_bin, str(save), arch="dat_tiny", criterion="dag_loss", max_update=4,
                      extra=("--upsample-scale", "1"))  # <s> y </s> needs |x|+2 vertices, the graph has |x|+1
    argv.remove("--disable-validation")
    with pytest.raises(NATUserError, match=r"every train target so far \(\d+ sentences\) was skipped .*--upsample-scale"):
        run_train(argv)
    assert not [name for name in os.listdir(save) if name.endswith(".pt")]  # no untrained "best"


def test_max_tokens_smaller_than_a_sentence(tiny_bin, tiny_cmlm, capsys):  # case 9
    from nat_plugins.errors import NATUserError

    with pytest.raises(NATUserError, match=r"\d+ sentence\(s\) exceed --max-tokens 6, e.g. sentence #\d+ "
                                           r"\(line \d+ of the split\) with \d+ tokens"):
        run_generate(gen(tiny_bin, tiny_cmlm, "--max-tokens", "6"), capsys)
    hyps = hypotheses(run_generate(gen(tiny_bin, tiny_cmlm, "--max-tokens", "6",
                                       "--skip-invalid-size-inputs-valid-test"), capsys))
    assert 0 < len(hyps) < 40  # sentences of up to 5 words (+ </s>) decoded, longer ones skipped


@pytest.mark.parametrize("flags,needle", [
    (["--length-beam", "100000"], "--length-beam 100000 exceeds"),
    (["--decode-viterbi-beta", "nan"], "--decode-viterbi-beta must be a finite number"),
    (["--decode-temperature", "inf"], "--decode-temperature must be a finite number"),
])
def test_impossible_decoding_values(flags, needle, tiny_bin, tiny_cmlm, capsys):  # case 10
    from nat_plugins.errors import NATUserError

    with pytest.raises(NATUserError, match=re.escape(needle)):
        run_generate(gen(tiny_bin, tiny_cmlm, *flags), capsys)


def test_ar_reranking_needs_nat_then_ar(tiny_bin, tiny_cmlm, tiny_ar, capsys):  # case 10
    from nat_plugins.errors import NATUserError

    with pytest.raises(NATUserError, match="the NAT checkpoint must come first"):
        run_generate(gen(tiny_bin, f"{tiny_ar}:{tiny_cmlm}", "--decode-ar-rerank"), capsys)
    with pytest.raises(NATUserError, match="needs an autoregressive second --path, but it is a CMLMModel"):
        run_generate(gen(tiny_bin, f"{tiny_cmlm}:{tiny_cmlm}", "--decode-ar-rerank"), capsys)


def test_ar_checkpoint_refuses_nat_only_flags(tiny_bin, tiny_ar, capsys):  # case 10
    from nat_plugins.errors import NATUserError

    with pytest.raises(NATUserError, match="--decode-iterations applies only to the plugin's NAT models"):
        run_generate(gen(tiny_bin, tiny_ar, "--decode-iterations", "4"), capsys)
    assert len(hypotheses(run_generate(gen(tiny_bin, tiny_ar, "--beam", "2"), capsys))) == 40  # plain AR still works


def test_decode_and_score_leaves_no_partial_output(tiny_bin, tmp_path, capsys):  # case 10
    import decode_and_score

    prefix = tmp_path / "job"
    status = decode_and_score.main(["--job", "m", "s", str(prefix),
                                    f"{tiny_bin} --user-dir {USER_DIR} --task nat_translation "
                                    f"--path {tmp_path / 'missing.pt'} --cpu --gen-subset test"])
    assert status == 2 and os.listdir(tmp_path) == []  # no job.out.part left behind
    assert "does not exist" in capsys.readouterr().err


def test_score_counts_only_newlines_as_line_breaks(tmp_path, capsys):  # case 10
    import score

    hyp, ref = tmp_path / "hyp", tmp_path / "ref"
    hyp.write_text("ein\u2028Haus\nklein\r ist\n", encoding="utf-8")
    ref.write_text("ein Haus\nklein ist\n", encoding="utf-8")
    assert score.main(["--hyp", str(hyp), "--ref", str(ref), "--json"]) == 0, capsys.readouterr().err
    assert '"sentences": 2' in capsys.readouterr().out


def test_diffglat_logs_no_none_for_unsampled_levels(tiny_bin, tmp_path):  # case 10
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        run_train(train_args(tiny_bin, str(tmp_path / "dg"), arch="diffglat_tiny", criterion="diffglat_loss",
                             max_update=8, extra=("--diffusion-warmup-updates", "2", "--log-interval", "1",
                                                  "--log-format", "simple")))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [r.getMessage() for r in records if r.name == "train_inner"]
    assert len(lines) == 8 and any("loss_t" in line for line in lines)
    assert not [line for line in lines if "=None" in line], lines
