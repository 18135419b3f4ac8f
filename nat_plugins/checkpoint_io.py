"""Checkpoint files: atomic writes, safe reads that fail in one line, resume.

Three guarantees for every run that loads the plugin (``--user-dir nat_plugins``),
whatever fairseq itself does:

* **Atomic writes.**  fairseq saves the first due checkpoint (e.g.
  ``checkpoint_1_3000.pt``) and then *copies* it to the others
  (``checkpoint_best.pt``, ``checkpoint_last.pt``) with a plain, non-atomic
  copy: a Ctrl-C or SIGKILL during that copy leaves a truncated
  ``checkpoint_last.pt`` where the previous good one was.  :func:`install`
  routes both the save and the copies through :func:`atomic_write`: a
  temporary file in the same directory, ``fsync``, ``os.replace`` and an
  ``fsync`` of the directory, so each checkpoint name always holds either
  its old or its new complete content.
* **Safe reads, one-line errors.**  Checkpoints are read with torch's
  weights-only unpickler only (:func:`read_checkpoint`).  A missing,
  empty, truncated or random file, and a file that pickles anything beyond
  plain data (a malicious pickle), raise :class:`UnreadableCheckpoint`, a
  :class:`~nat_plugins.errors.NATUserError`, so the CLI prints one line and
  exits 2.  The message never suggests turning safe loading off.
* **Resume.**  When ``checkpoint_last.pt`` cannot be read (a run killed by
  fairseq's own non-atomic copy, or a disk that filled up), training resumes
  from the newest readable checkpoint of ``--save-dir`` with one warning line
  naming both files, instead of a traceback.

Only torch, the standard library and (lazily) fairseq are imported here.
"""
import logging
import os
import re
import shutil
import tempfile

import torch

from .errors import NATUserError

logger = logging.getLogger(__name__)

__all__ = ["UnreadableCheckpoint", "atomic_write", "atomic_copy", "atomic_torch_save", "read_checkpoint",
           "newest_readable_checkpoint", "remove_stale_temporaries", "install"]


class UnreadableCheckpoint(NATUserError):
    """A checkpoint file that is missing, corrupt, or refused by the safe loader.

    ``path``: the file; ``refused``: True when the safe loader refused a
    pickled object (possible code execution), False for a damaged file.
    """

    def __init__(self, message, path, refused=False):
        super().__init__(message)
        self.path = path
        self.refused = refused


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write):
    """Call ``write(binary_file)`` on a temporary file next to ``path``, then move it into place.

    The temporary name starts with ``.`` and ends in ``.tmp``, so fairseq's
    checkpoint patterns never match it.  On any exception (KeyboardInterrupt
    included) the temporary file is removed and ``path`` is untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def atomic_copy(src, dst):
    """Copy ``src`` to ``dst`` so that ``dst`` is never seen half-written."""
    with open(src, "rb") as source:
        atomic_write(dst, lambda handle: shutil.copyfileobj(source, handle, 16 << 20))


def atomic_torch_save(obj, path):
    """``torch.save`` through :func:`atomic_write`."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

_UNSAFE_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def describe_load_error(path, error):
    """An :class:`UnreadableCheckpoint` for ``error`` raised while loading ``path``.

    torch reports every failure of the weights-only unpickler with advice to
    load with the safe loader off; none of that text is kept.
    """
    if isinstance(error, UnreadableCheckpoint):
        return error
    if os.path.isdir(path):
        return UnreadableCheckpoint(f"checkpoint {path} is a directory, not a checkpoint file", path)
    if isinstance(error, FileNotFoundError) or not os.path.exists(path):
        return UnreadableCheckpoint(f"checkpoint {path} does not exist", path)
    size = os.path.getsize(path)
    text = str(error)
    unsafe = _UNSAFE_GLOBAL.search(text)
    if unsafe is not None and "Weights only load failed" in text:
        return UnreadableCheckpoint(
            f"refusing to load checkpoint {path}: it pickles {unsafe.group(1)}, which is not plain data, so "
            "loading it could run code; use only checkpoints written by fairseq-train or "
            "scripts/evaluation/average_checkpoints.py from a source you trust", path, refused=True)
    if size == 0:
        reason = "the file is empty"
    elif isinstance(error, EOFError) or "central directory" in text or "zip archive" in text:
        reason = f"{size} bytes, truncated or not a PyTorch file"
    else:
        reason = f"{size} bytes, corrupt or not a PyTorch checkpoint"
    return UnreadableCheckpoint(f"checkpoint {path} is unreadable ({reason}); was its save interrupted?", path)


def read_checkpoint(path, map_location="cpu"):
    """Load ``path`` with the safe (weights-only) unpickler and the allow-list
    of :mod:`nat_plugins.compat`; raise :class:`UnreadableCheckpoint` on any failure."""
    from .compat import load_checkpoint_file

    try:
        state = load_checkpoint_file(path, map_location=map_location)
    except Exception as error:  # pickle, zip, EOF, OS errors all mean "unusable"
        raise describe_load_error(path, error) from None
    if not isinstance(state, dict):
        raise UnreadableCheckpoint(f"{path} is not a fairseq checkpoint (it holds a {type(state).__name__})", path)
    return state


#: Every checkpoint name fairseq-train writes into --save-dir.
_CHECKPOINT_NAME = re.compile(r"^checkpoint(\d+|_\d+_\d+|_last|_best|\.best_.+)\.pt$")


def newest_readable_checkpoint(folder, exclude=()):
    """``(path, skipped)``: the most recently written checkpoint in ``folder``
    that the safe loader reads, and ``[(path, reason)]`` for the newer ones it
    could not read.  ``path`` is None when none is readable."""
    excluded = {os.path.abspath(p) for p in exclude}
    names = [n for n in os.listdir(folder) if _CHECKPOINT_NAME.match(n)]
    paths = [os.path.join(folder, n) for n in names if os.path.abspath(os.path.join(folder, n)) not in excluded]
    paths.sort(key=lambda p: os.stat(p).st_mtime_ns, reverse=True)
    skipped = []
    for path in paths:
        try:
            state = read_checkpoint(path)
        except UnreadableCheckpoint as error:
            skipped.append((path, str(error)))
            continue
        if "model" in state and "extra_state" in state:
            return path, skipped
        skipped.append((path, "not a training checkpoint"))
    return None, skipped


# ---------------------------------------------------------------------------
# fairseq patches
# ---------------------------------------------------------------------------


def _patched_save(original):
    def torch_persistent_save(obj, filename, async_write=False):
        if async_write or not isinstance(filename, str):
            return original(obj, filename, async_write=async_write)
        return atomic_torch_save(obj, filename)

    return torch_persistent_save


def _raised_by_torch_load(error):
    """True when ``error`` comes from inside ``torch.load`` (a bad file: garbage
    bytes can raise nearly any exception type there), not from fairseq's
    processing of a loaded checkpoint (a bug, which keeps its traceback)."""
    tb = error.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if (os.path.basename(os.path.dirname(name)) == "torch"
                and os.path.basename(name) in ("serialization.py", "_weights_only_unpickler.py")):
            return True
        tb = tb.tb_next
    return False


def _patched_load_to_cpu(original):
    def load_checkpoint_to_cpu(path, arg_overrides=None, load_on_all_ranks=False):
        if not os.path.isfile(path):
            raise describe_load_error(path, FileNotFoundError(path))
        try:
            return original(path, arg_overrides=arg_overrides, load_on_all_ranks=load_on_all_ranks)
        except Exception as error:
            if isinstance(error, (EOFError, OSError)) or _raised_by_torch_load(error):
                raise describe_load_error(path, error) from None
            raise

    return load_checkpoint_to_cpu


def _patched_ensemble_loader(original):
    def load_model_ensemble_and_task(filenames, *args, **kwargs):
        for filename in filenames:
            # fairseq raises a bare IOError("Model file not found") otherwise
            if not os.path.exists(filename) and not os.path.exists(filename.replace(".pt", "-shard0.pt")):
                raise UnreadableCheckpoint(f"checkpoint {filename} does not exist (check --path)", filename)
        return original(filenames, *args, **kwargs)

    return load_model_ensemble_and_task


def remove_stale_temporaries(folder):
    """Delete the temporary files of writes that a SIGKILL or power cut stopped
    (:func:`atomic_write` names them ``.<name>.<random>.tmp``); returns their paths."""
    stale = []
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith(".checkpoint") and name.endswith(".tmp"):
                path = os.path.join(folder, name)
                os.remove(path)
                stale.append(path)
    return stale


def _patched_resume(original):
    def load_checkpoint(cfg, trainer, **passthrough_args):
        if trainer.data_parallel_rank == 0:  # nothing is being saved while a run starts
            for path in remove_stale_temporaries(cfg.save_dir):
                logger.warning(f"removed {path}, left by an interrupted checkpoint save")
        try:
            return original(cfg, trainer, **passthrough_args)
        except UnreadableCheckpoint as error:
            last = os.path.join(cfg.save_dir, f"checkpoint_last{trainer.checkpoint_suffix}.pt")
            resuming = cfg.restore_file == "checkpoint_last.pt" and not cfg.finetune_from_model
            if error.refused or not resuming or os.path.abspath(error.path) != os.path.abspath(last):
                raise
            fallback, skipped = newest_readable_checkpoint(cfg.save_dir, exclude=[last])
            if fallback is None:
                raise UnreadableCheckpoint(
                    f"{error} No other checkpoint in {cfg.save_dir} is readable either; move it away to start "
                    "training from scratch", error.path) from None
            logger.warning(f"{last} is unreadable; resuming from {fallback}, the newest readable checkpoint"
                           + (f" ({len(skipped)} newer ones are unreadable too)" if skipped else ""))
            from omegaconf import open_dict

            with open_dict(cfg):
                cfg.restore_file = fallback
            try:
                return original(cfg, trainer, **passthrough_args)
            finally:
                with open_dict(cfg):
                    cfg.restore_file = "checkpoint_last.pt"

    return load_checkpoint


def install():
    """Patch fairseq's checkpoint writer, copier, readers and resume (idempotent)."""
    try:
        from fairseq import checkpoint_utils
        from fairseq.file_io import PathManager
    except ImportError:  # ops-only use without fairseq
        return
    if getattr(checkpoint_utils, "_nat_plugins_checkpoint_io", False):
        return

    class AtomicPathManager(PathManager):
        """fairseq's PathManager whose ``copy`` of local files is atomic."""

        @staticmethod
        def copy(src_path, dst_path, overwrite=False):
            if PathManager.path_requires_pathmanager(src_path) or PathManager.path_requires_pathmanager(dst_path):
                return PathManager.copy(src_path, dst_path, overwrite=overwrite)
            if os.path.exists(dst_path) and not overwrite:
                return False
            atomic_copy(src_path, dst_path)
            return True

    checkpoint_utils.PathManager = AtomicPathManager
    checkpoint_utils.torch_persistent_save = _patched_save(checkpoint_utils.torch_persistent_save)
    checkpoint_utils.load_checkpoint_to_cpu = _patched_load_to_cpu(checkpoint_utils.load_checkpoint_to_cpu)
    checkpoint_utils.load_model_ensemble_and_task = _patched_ensemble_loader(
        checkpoint_utils.load_model_ensemble_and_task)
    checkpoint_utils.load_checkpoint = _patched_resume(checkpoint_utils.load_checkpoint)
    checkpoint_utils._nat_plugins_checkpoint_io = True
