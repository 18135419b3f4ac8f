"""Case 6 of issue #17: a missing, truncated, empty, random or malicious
checkpoint ends in one line and exit status 2; the safe loader stays on and
its error never suggests turning it off."""
import random

import pytest
import torch

from reliability_helpers import USER_DIR, add_script_dirs, assert_one_line_error, run_cli, run_generate


class _Payload:
    """Pickles as a call to ``open(marker, "w")``: loading it with the full unpickler creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_malicious(path, marker):
    torch.save({"model": {}, "args": None, "extra_state": _Payload(str(marker))}, str(path))


def bad_checkpoint(kind, good, folder):
    path = folder / f"{kind}.pt"
    data = open(good, "rb").read()
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind.startswith("random"):  # garbage makes the unpickler raise many exception types
        path.write_bytes(random.Random(kind).randbytes(4096))
    elif kind == "directory":
        path.mkdir()
    return str(path)


def gen_argv(data, path):
    return [data, "--user-dir", USER_DIR, "--task", "nat_translation", "--path", path, "--cpu", "--gen-subset", "test"]


@pytest.mark.parametrize("kind,needle", [
    ("missing", "does not exist"), ("truncated", "is unreadable"), ("empty", "the file is empty"),
    ("random1", "is unreadable"), ("random2", "is unreadable"), ("random3", "is unreadable"),
    ("directory", "is a directory"),
])
def test_damaged_checkpoint_is_a_user_error(kind, needle, tiny_bin, tiny_cmlm, tmp_path, capsys):
    from nat_plugins.errors import NATUserError

    path = bad_checkpoint(kind, tiny_cmlm, tmp_path)
    with pytest.raises(NATUserError, match=needle) as info:
        run_generate(gen_argv(tiny_bin, path), capsys)
    assert path in str(info.value) and "weights_only" not in str(info.value)


def test_malicious_pickle_is_refused_in_one_line_and_runs_nothing(tiny_bin, tmp_path):
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.pt"
    write_malicious(evil, marker)
    proc = run_cli("fairseq-generate", *gen_argv(tiny_bin, str(evil)))
    line = assert_one_line_error(proc, "refusing to load checkpoint")
    assert "pickles io.open" in line and str(evil) in line  # open() pickles as io.open
    assert "weights_only" not in proc.stderr and "weights_only" not in proc.stdout
    assert not marker.exists()


def test_averaging_refuses_a_malicious_input_and_a_directory_output(tiny_cmlm, tmp_path, capsys):
    add_script_dirs()
    import average_checkpoints

    def error_line(argv):
        capsys.readouterr()
        assert average_checkpoints.main(argv) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("average_checkpoints.py: error:")]
        assert len(lines) == 1 and "weights_only" not in err, err
        return lines[0]

    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.pt"
    write_malicious(evil, marker)
    assert "refusing to load checkpoint" in error_line(["--inputs", tiny_cmlm, str(evil), "--output",
                                                        str(tmp_path / "avg.pt")])
    assert not marker.exists()
    assert "is a directory" in error_line(["--inputs", tiny_cmlm, "--output", str(tmp_path)])
