"""In-process ``fairseq-interactive`` for the end-to-end tests (about 3 s cheaper than a subprocess)."""
import os

from conftest import ROOT


def interactive_args(data, path, *extra):
    return [data, "--user-dir", os.path.join(ROOT, "nat_plugins"), "--task", "nat_translation", "--path", path,
            "--cpu", "--source-lang", "en", "--target-lang", "de", "--buffer-size", "8", "--batch-size", "8",
            *extra]


def run_interactive(argv, lines, tmp_path, capsys):
    """Feed ``lines`` (one input line each) through ``fairseq-interactive``; returns its stdout."""
    from fairseq import options
    from fairseq_cli import interactive

    source = tmp_path / "input.txt"
    source.write_text("".join(line + "\n" for line in lines))
    parser = options.get_interactive_generation_parser()
    interactive.main(options.parse_args_and_arch(parser, [*argv, "--input", str(source)]))
    return capsys.readouterr().out
