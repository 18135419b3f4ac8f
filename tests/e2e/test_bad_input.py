"""Bad input ends a fairseq CLI run with one clear line, exit status 2."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, hypotheses

BIN = os.path.dirname(sys.executable)
USER_DIR = os.path.join(ROOT, "nat_plugins")


def run(tool, *argv, stdin=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    return subprocess.run([os.path.join(BIN, tool), *argv], capture_output=True, text=True, input=stdin, env=env, cwd=cwd)


def one_line_error(proc, needle):
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [l for l in proc.stderr.splitlines() if l.startswith("nat_plugins: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert needle in errors[0], errors[0]
    return errors[0]


def test_missing_data_directory(tmp_path):
    proc = run("fairseq-train", str(tmp_path / "nope"), "--user-dir", USER_DIR, "--task", "nat_translation",
               "--arch", "cmlm_tiny", "--criterion", "cmlm_loss", "--cpu", "--max-tokens", "100")
    one_line_error(proc, "does not exist")


def test_inconsistent_training_flags(tiny_bin):
    proc = run("fairseq-train", tiny_bin, "--user-dir", USER_DIR, "--task", "nat_translation",
               "--arch", "cmlm_tiny", "--criterion", "cmlm_loss", "--cpu")
    one_line_error(proc, "--max-tokens")


def test_dictionary_mismatch_with_checkpoint(tiny_bin, tiny_cmlm, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_bin, other)
    for lang in ("en", "de"):
        with open(other / f"dict.{lang}.txt", "a") as f:
            f.write("extrasymbol 1\n")
    proc = run("fairseq-generate", str(other), "--user-dir", USER_DIR, "--task", "nat_translation",
               "--path", tiny_cmlm, "--cpu", "--gen-subset", "test")
    one_line_error(proc, "does not match")


def test_same_size_but_reordered_dictionary_is_caught(tiny_bin, tiny_cmlm, tmp_path):
    other = tmp_path / "swapped"
    shutil.copytree(tiny_bin, other)
    for lang in ("en", "de"):
        lines = (other / f"dict.{lang}.txt").read_text().splitlines()
        lines[0], lines[1] = lines[1], lines[0]
        (other / f"dict.{lang}.txt").write_text("\n".join(lines) + "\n")
    proc = run("fairseq-generate", str(other), "--user-dir", USER_DIR, "--task", "nat_translation",
               "--path", tiny_cmlm, "--cpu", "--gen-subset", "test")
    one_line_error(proc, "does not match")


def test_decoding_option_for_another_family_and_fairseq_flags(tiny_bin, tiny_cmlm):
    proc = run("fairseq-generate", tiny_bin, "--user-dir", USER_DIR, "--task", "nat_translation",
               "--path", tiny_cmlm, "--cpu", "--gen-subset", "test", "--iter-decode-max-iter", "4")
    one_line_error(proc, "--decode-iterations")
    proc = run("fairseq-generate", tiny_bin, "--user-dir", USER_DIR, "--task", "nat_translation",
               "--path", tiny_cmlm, "--cpu", "--decoding-strategy", "no_such_thing")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr and "Traceback" not in proc.stderr


def test_over_long_input_and_empty_lines_interactive(tiny_bin, tiny_cmlm):
    common = [tiny_bin, "--user-dir", USER_DIR, "--task", "nat_translation", "--path", tiny_cmlm, "--cpu",
              "--source-lang", "en", "--target-lang", "de", "--tokenizer", "moses"]
    ok = run("fairseq-interactive", *common, stdin="w1 w2 w3\n\nw4 w5\n")
    assert ok.returncode == 0, ok.stderr[-2000:]
    hyps = hypotheses(ok.stdout)
    assert sorted(hyps) == [0, 1, 2]
    assert hyps[1] == ""  # the empty line is translated to empty output, not dropped
    assert hyps[0].strip() and hyps[2].strip()
    long = run("fairseq-interactive", *common, "--max-source-positions", "16", stdin=" ".join(["w1"] * 40) + "\n")
    one_line_error(long, "--skip-invalid-size-inputs-valid-test")


def test_empty_source_lines_in_binarized_test_set(tmp_path, tiny_cmlm, tiny_bin):
    import tiny_data

    raw = tmp_path / "raw"
    raw.mkdir()
    for split in ("train", "valid", "test"):
        for lang, text in (("en", "w1 w2\n\nw3\n"), ("de", "W1 W2\n\nW3\n")):
            (raw / f"{split}.{lang}").write_text(text)
    dest = tmp_path / "bin"
    dest.mkdir()
    for lang in ("en", "de"):
        shutil.copy(os.path.join(tiny_bin, f"dict.{lang}.txt"), dest / f"dict.{lang}.txt")
    from fairseq import options
    from fairseq_cli import preprocess

    preprocess.main(options.get_preprocessing_parser().parse_args([
        "--source-lang", "en", "--target-lang", "de", "--testpref", str(raw / "test"), "--destdir", str(dest),
        "--srcdict", str(dest / "dict.en.txt"), "--tgtdict", str(dest / "dict.de.txt"), "--workers", "1"]))
    proc = run("fairseq-generate", str(dest), "--user-dir", USER_DIR, "--task", "nat_translation",
               "--path", tiny_cmlm, "--cpu", "--gen-subset", "test", "--length-beam", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    hyps = hypotheses(proc.stdout)
    assert sorted(hyps) == [0, 1, 2] and hyps[1] == ""
