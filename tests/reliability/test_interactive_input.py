"""Cases 2-4 of issue #17 (and the over-long-line case of 10): fairseq-interactive
reads its input by ``\\n``-terminated lines, output ids are input line numbers
minus one, non-UTF-8 input ends in one line after the good lines before it,
and the README's command tokenizes like the training data."""
import os
import re
import shlex

import pytest

from reliability_helpers import ROOT, USER_DIR, add_script_dirs, assert_one_line_error, hypotheses, run_cli


def interactive_argv(data, path, *extra):
    return [data, "--user-dir", USER_DIR, "--task", "nat_translation", "--path", path, "--cpu",
            "--source-lang", "en", "--target-lang", "de", "--tokenizer", "moses", *extra]


def run_interactive(argv, data_bytes, tmp_path, capsys):
    from fairseq import options
    from fairseq_cli import interactive

    source = tmp_path / "input.txt"
    source.write_bytes(data_bytes)
    parser = options.get_interactive_generation_parser()
    interactive.main(options.parse_args_and_arch(parser, [*argv, "--input", str(source)]))
    return capsys.readouterr().out


def sources(output):
    return {int(line.split("\t")[0][2:]): line.split("\t")[1] for line in output.splitlines() if line.startswith("S-")}


@pytest.mark.parametrize("buffer_size", ["1", "8"])
def test_carriage_return_and_empty_lines_keep_ids_aligned(buffer_size, tiny_bin, tiny_cmlm, tmp_path, capsys):
    data = b"w1 w2 w3\nw4\rw5 w6\n\nw7 w8\r\nw9 w10\n"  # a bare \r inside line 2, a CRLF line end on line 4
    out = run_interactive(interactive_argv(tiny_bin, tiny_cmlm, "--buffer-size", buffer_size, "--batch-size", buffer_size),
                          data, tmp_path, capsys)
    hyps = hypotheses(out)
    assert sorted(hyps) == [0, 1, 2, 3, 4], out
    assert hyps[2] == "" and all(hyps[i].strip() for i in (0, 1, 3, 4))
    src = sources(out)
    assert src[1].split() == ["w4", "w5", "w6"] and src[3] == "w7 w8" and src[4] == "w9 w10"


def test_non_utf8_line_is_named_after_the_good_lines_are_translated(tiny_bin, tiny_cmlm, tmp_path, capsys):
    from nat_plugins.errors import NATUserError

    data = b"w1 w2\nw3 w4\nw5 \xff w6\nw7\n"
    with pytest.raises(NATUserError, match=r"line 3 of .*input.txt is not UTF-8 \(byte 0xff"):
        run_interactive(interactive_argv(tiny_bin, tiny_cmlm, "--buffer-size", "2", "--batch-size", "2"),
                        data, tmp_path, capsys)
    assert sorted(hypotheses(capsys.readouterr().out)) == [0, 1]


def test_non_utf8_stdin_is_one_line_and_exit_2(tiny_bin, tiny_cmlm):
    proc = run_cli("fairseq-interactive", *interactive_argv(tiny_bin, tiny_cmlm), stdin=b"w1 w2\n\xe9t\xe9\nw3\n")
    assert_one_line_error(proc, "line 2 of standard input is not UTF-8")
    assert sorted(hypotheses(proc.stdout)) == [0]


def test_over_long_line_error_names_the_input_line(tiny_bin, tiny_cmlm, tmp_path, capsys):
    from nat_plugins.errors import NATUserError

    data = ("w1 w2\nw3\n" + " ".join(["w4"] * 40) + "\n").encode()
    with pytest.raises(NATUserError, match="input line 3 is too long"):
        run_interactive(interactive_argv(tiny_bin, tiny_cmlm, "--max-source-positions", "16"), data, tmp_path, capsys)


def readme_interactive_argv():
    """The argv of the README's ``fairseq-interactive`` example."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    match = re.search(r"\| fairseq-interactive ((?:.*\\\n)*.*)", text)
    assert match, "README.md has no fairseq-interactive example"
    return shlex.split(match.group(1).replace("\\\n", " "))


def test_readme_interactive_command_tokenizes_like_prepare_data():
    from fairseq import options
    from fairseq.data import encoders

    add_script_dirs()
    import prepare_data

    argv = [USER_DIR if a == "nat_plugins" else a for a in readme_interactive_argv()]
    args = options.parse_args_and_arch(options.get_interactive_generation_parser(), argv)
    tokenizer = encoders.build_tokenizer(args)
    assert tokenizer is not None, "the README command must tokenize like the data (--tokenizer moses)"
    ours = prepare_data.moses_tokenizer("en")
    for text in ["The company's shares & bonds [ 2014 ] rose .", 'He said "no" | x < y > z .']:
        assert tokenizer.encode(text) == ours(text), text
