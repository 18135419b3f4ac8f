"""Shared by the fault-injection tests: CLI runs, one-line error checks, tiny trainings."""
import os
import subprocess
import sys

import torch

from tests import root_conftest, script_dirs

_conftest = root_conftest.load()
ROOT, run_train, train_args = _conftest.ROOT, _conftest.run_train, _conftest.train_args
hypotheses, run_generate = _conftest.hypotheses, _conftest.run_generate

BIN = os.path.dirname(sys.executable)
USER_DIR = os.path.join(ROOT, "nat_plugins")
add_script_dirs = script_dirs.add_to_sys_path  # then ``import average_checkpoints`` etc.


def run_cli(tool, *argv, stdin=None, cwd=None):
    """A fairseq console script (or a ``scripts/<job>/*.py`` path) in a subprocess; bytes in, text out."""
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    command = [sys.executable, tool] if tool.endswith(".py") else [os.path.join(BIN, tool)]
    proc = subprocess.run([*command, *argv], capture_output=True, input=stdin, env=env, cwd=cwd)
    proc.stdout, proc.stderr = (proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))
    return proc


def assert_one_line_error(proc, needle, prefix="nat_plugins: error:"):
    """Exit status 2, exactly one error line containing ``needle``, no traceback."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith(prefix)]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert needle in errors[0], errors[0]
    return errors[0]


def train_cmlm(data, save_dir, max_update, *extra):
    """In-process fairseq-train of the tiny CMLM with a periodic checkpoint every 2 updates."""
    run_train(train_args(data, str(save_dir), max_update=max_update,
                         extra=("--save-interval-updates", "2", "--log-interval", "1000", *extra)))


def num_updates(path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["optimizer_history"][-1]["num_updates"]
