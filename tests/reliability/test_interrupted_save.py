"""Case 1 of issue #17: an interrupt during a checkpoint save loses nothing.

fairseq writes the due periodic checkpoint, then copies it to
``checkpoint_last.pt``.  The interrupt is injected deterministically: the
copy writes half of the file and then raises ``KeyboardInterrupt`` (what
Ctrl-C does), whichever copy routine is in use (``shutil.copyfile``'s
sendfile path, as fairseq uses, or ``shutil.copyfileobj``).
"""
import glob
import os
import shutil
import subprocess
import sys

import pytest

from reliability_helpers import add_script_dirs, num_updates, train_cmlm


def _half_copy_then_interrupt(monkeypatch):
    def half(fsrc, fdst, *args, **kwargs):
        data = fsrc.read()
        fdst.write(data[: len(data) // 2])
        fdst.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copyfileobj", half)
    monkeypatch.setattr(shutil, "_fastcopy_sendfile", half)


def _average_last(save, n, out, capsys):
    """scripts/evaluation/average_checkpoints.py --last N, in-process: (exit status, stderr)."""
    add_script_dirs()
    import average_checkpoints

    capsys.readouterr()
    status = average_checkpoints.main(["--dir", str(save), "--last", str(n), "--output", str(out)])
    return status, capsys.readouterr().err


def test_interrupted_copy_keeps_the_previous_last_checkpoint(tiny_bin, tmp_path, monkeypatch, capsys):
    save = tmp_path / "ckpt"
    train_cmlm(tiny_bin, save, 2)
    last = save / "checkpoint_last.pt"
    assert num_updates(last) == 2

    with monkeypatch.context() as patch:
        _half_copy_then_interrupt(patch)
        with pytest.raises(KeyboardInterrupt):
            train_cmlm(tiny_bin, save, 4)  # resumes at 2, saves checkpoint_2_4.pt, copy to last interrupted
    assert num_updates(save / "checkpoint_2_4.pt") == 4  # an epoch is 3 updates of the tiny data
    # the previous complete file (written at the end of epoch 1), not half of the new one
    assert num_updates(last) == 3
    assert not glob.glob(str(save / ".*.tmp")), os.listdir(save)

    # a plain resume works and goes on from the intact checkpoint_last.pt
    train_cmlm(tiny_bin, save, 8)
    assert num_updates(last) == 8
    status, err = _average_last(save, 3, tmp_path / "avg.pt", capsys)
    assert status == 0, err
    assert "checkpoint_3_8.pt checkpoint_2_4.pt checkpoint_1_2.pt" in err.replace(str(save) + os.sep, "")


_SIGKILL_CHILD = r"""
import os, shutil, signal, sys
from fairseq import checkpoint_utils
import nat_plugins  # what --user-dir does

def half_then_sigkill(fsrc, fdst, *args, **kwargs):
    data = fsrc.read()
    fdst.write(data[: len(data) // 2])
    fdst.flush()
    os.fsync(fdst.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

shutil.copyfileobj = shutil._fastcopy_sendfile = half_then_sigkill
# the call fairseq's save_checkpoint makes for checkpoint_last.pt
checkpoint_utils.PathManager.copy(sys.argv[1], sys.argv[2], overwrite=True)
"""


def test_sigkill_during_the_copy_leaves_the_old_file(tmp_path):
    src, dst = tmp_path / "checkpoint_1_4.pt", tmp_path / "checkpoint_last.pt"
    src.write_bytes(os.urandom(1 << 20))
    dst.write_bytes(b"previous complete checkpoint")
    proc = subprocess.run([sys.executable, "-c", _SIGKILL_CHILD, str(src), str(dst)], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert dst.read_bytes() == b"previous complete checkpoint"
    from nat_plugins.checkpoint_io import remove_stale_temporaries

    orphans = remove_stale_temporaries(str(tmp_path))  # the resume of the next run does this
    assert [os.path.basename(p)[:20] for p in orphans] == [".checkpoint_last.pt."]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_1_4.pt", "checkpoint_last.pt"]


def test_resume_and_averaging_skip_an_unreadable_checkpoint(tiny_bin, tmp_path, caplog, capsys):
    """What an interrupted non-atomic copy (or a full disk) leaves: a truncated
    newest checkpoint.  Resume uses the newest readable one with one warning;
    averaging names the bad file and takes the next one."""
    save = tmp_path / "ckpt"
    train_cmlm(tiny_bin, save, 4)
    last, newest = save / "checkpoint_last.pt", save / "checkpoint_2_4.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 3])
    last.write_bytes(b"")  # 0 bytes, as fairseq's interrupted copy leaves it

    status, err = _average_last(save, 1, tmp_path / "avg.pt", capsys)
    assert status == 0, err
    skipped = [line for line in err.splitlines() if "skipping" in line]
    assert len(skipped) == 2 and any("checkpoint_2_4.pt" in line for line in skipped), err
    assert all("unreadable" in line for line in skipped)
    assert "averaging 1 checkpoints: " + str(save / "checkpoint_1_2.pt") in err

    (save / ".checkpoint_last.pt.x1y2.tmp").write_bytes(b"half")  # what a SIGKILL during a save leaves
    caplog.set_level("WARNING")
    train_cmlm(tiny_bin, save, 8)  # resumes from checkpoint_1_2.pt (2 updates), trains to 8
    warnings = [r.getMessage() for r in caplog.records if "resuming from" in r.getMessage()]
    assert len(warnings) == 1 and "checkpoint_1_2.pt" in warnings[0] and "checkpoint_last.pt" in warnings[0]
    assert not (save / ".checkpoint_last.pt.x1y2.tmp").exists()
    assert num_updates(last) == 8


def test_resume_with_nothing_readable_is_one_clear_error(tiny_bin, tmp_path):
    from nat_plugins.errors import NATUserError

    save = tmp_path / "ckpt"
    save.mkdir()
    (save / "checkpoint_last.pt").write_bytes(b"")
    with pytest.raises(NATUserError, match="checkpoint_last.pt is unreadable .*empty.* No other checkpoint"):
        train_cmlm(tiny_bin, save, 2)
    assert (save / "checkpoint_last.pt").read_bytes() == b""  # never overwritten by a fresh start
