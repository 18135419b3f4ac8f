"""Shims that make fairseq-fixed 0.12.3.1 run on torch 2.x and NumPy 2.

Imported first by ``nat_plugins/__init__.py`` (and therefore by
``--user-dir nat_plugins``, which fairseq imports before it loads any
checkpoint).  Each shim fixes one documented breakage (REFERENCE §1):

* ``torch.load`` defaults to ``weights_only=True`` since torch 2.6 and
  rejects the ``argparse.Namespace`` stored in argparse-trained fairseq
  checkpoints.  We keep the safe loader on and allow-list only the few
  plain classes fairseq checkpoints contain (:data:`CHECKPOINT_SAFE_GLOBALS`);
  we never switch the safety off globally.
* NumPy 2 removed the ``np.float`` / ``np.int`` aliases that fairseq still
  uses in ``dynamic_crf_layer`` and a few wav2vec paths.
* fairseq's ``data_utils.batch_by_size`` drops the last batch when its
  size is not a multiple of ``--required-batch-size-multiple`` (default 8).
  For training that only skips a few sentences, but ``fairseq-generate``
  then silently evaluates e.g. 3000 of newstest2014's 3003 lines.  We put
  the dropped tail back as a final batch (:func:`_keep_last_batch`).
* Hydra gap: stock NAT models read the criterion's ``label_smoothing`` from
  the model args, which hydra configs lack
  (:func:`_patch_hydra_label_smoothing`).
* Checkpoints are written atomically, read safely and resumed from the
  newest readable one (:mod:`nat_plugins.checkpoint_io`).
* ``fairseq-interactive`` reads its input with ``fileinput``'s universal
  newlines and a strict UTF-8 decoder: a bare ``\r`` splits a line (every
  later id shifts) and one non-UTF-8 byte kills the run before anything is
  translated.  :func:`read_input_lines` replaces its reader.
* fairseq's ``--help`` fires before the task's and model's options are
  added, so it never lists them (:func:`_help_after_plugin_options`).

This module imports torch and numpy only at top level; fairseq is touched
lazily so that ``nat_plugins.ops`` stays importable without fairseq.
"""
import argparse
import collections
import sys

import numpy as np
import torch

__all__ = ["CHECKPOINT_SAFE_GLOBALS", "install", "load_checkpoint_file", "read_input_lines", "patch_interactive",
           "forget_idle_meters"]

#: Everything a fairseq checkpoint written by ``fairseq-train`` (argparse or
#: hydra front end) pickles besides tensors and builtins.  Kept minimal on
#: purpose: every entry is a plain data container with no code execution.
CHECKPOINT_SAFE_GLOBALS = [
    argparse.Namespace,  # ``args`` of argparse-trained checkpoints
    collections.OrderedDict,
    collections.defaultdict,
    # fairseq keeps its metric meters (e.g. the BLEU n-gram counts logged by
    # --eval-bleu) in ``extra_state``; they pickle as NumPy arrays/scalars.
    np.ndarray,
    np.dtype,
    np.core.multiarray._reconstruct if not hasattr(np, "_core") else np._core.multiarray._reconstruct,
    np.core.multiarray.scalar if not hasattr(np, "_core") else np._core.multiarray.scalar,
] + [type(np.dtype(code)) for code in ("f8", "f4", "i8", "i4", "b1")]


def _install_numpy_aliases():
    # Plain builtins are exactly what these aliases meant before NumPy 1.24.
    for name, value in (("float", float), ("int", int), ("bool", bool), ("object", object)):
        if name not in np.__dict__:
            setattr(np, name, value)


def _install_safe_globals():
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is not None:  # torch < 2.4 has no weights_only allow-list
        add(list(CHECKPOINT_SAFE_GLOBALS))


def load_checkpoint_file(path, map_location="cpu"):
    """``torch.load`` a fairseq checkpoint with the safe (weights-only)
    unpickler and this module's allow-list.

    Used by our own tools (checkpoint averaging, benchmarks) so they read
    exactly what ``fairseq-generate`` reads, with no environment variables.
    """
    _install_safe_globals()
    return torch.load(path, map_location=map_location, weights_only=True)


def _keep_last_batch():
    try:
        from fairseq.data import data_utils
    except ImportError:  # ops-only use without fairseq
        return
    original = data_utils.batch_by_size
    if getattr(original, "_nat_plugins_keeps_tail", False):
        return

    def batch_by_size(indices, *args, **kwargs):
        batches = original(indices, *args, **kwargs)
        indices = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices), dtype=np.int64)
        covered = sum(len(b) for b in batches)
        # Batches are consecutive slices of ``indices``; the dropped batch
        # is exactly the uncovered tail.
        if covered < len(indices):
            batches = list(batches) + [indices[covered:]]
        return batches

    batch_by_size._nat_plugins_keeps_tail = True
    data_utils.batch_by_size = batch_by_size


def _patch_hydra_label_smoothing():
    """fairseq's NAT models read ``self.args.label_smoothing``, a *criterion*
    option that the hydra model config does not carry, so
    ``fairseq-hydra-train`` with e.g. stock ``cmlm_transformer`` crashes.
    Hand the criterion's own value to the model when it is missing."""
    try:
        from fairseq.criterions.nat_loss import LabelSmoothedDualImitationCriterion as NatLoss
    except ImportError:
        return
    original = NatLoss.forward
    if getattr(original, "_nat_plugins_patched", False):
        return

    def forward(self, model, sample, reduce=True):
        args = getattr(model, "args", None)
        if args is not None and getattr(args, "label_smoothing", None) is None:
            try:
                args.label_smoothing = self.label_smoothing
            except Exception:  # read-only OmegaConf node: open it once
                from omegaconf import open_dict

                with open_dict(args):
                    args.label_smoothing = self.label_smoothing
        return original(self, model, sample, reduce=reduce)

    forward._nat_plugins_patched = True
    NatLoss.forward = forward


def read_input_lines(source, buffer_size):
    """fairseq-interactive's input, in chunks of ``buffer_size`` stripped lines.

    A line ends at ``\n`` only, so input line *n* is always output id *n - 1*
    (``\r``, U+2028 and other characters that universal newlines would break
    on stay inside the line, where the tokenizer treats them as spaces); file
    and stdin (``-``) behave alike.  A line that is not UTF-8 ends the run with
    one error naming its number, after every line before it was translated.
    """
    from .errors import NATUserError

    name = "standard input" if source == "-" else source
    try:
        handle = sys.stdin.buffer if source == "-" else open(source, "rb")
    except OSError as exc:
        raise NATUserError(f"cannot read --input {source}: {exc.strerror or exc}") from None
    buffer = []
    try:
        for number, raw in enumerate(handle, 1):  # binary iteration splits at b"\n" only
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                if buffer:
                    yield buffer
                raise NATUserError(
                    f"line {number} of {name} is not UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} "
                    "of the line); convert the input to UTF-8 first, e.g. with iconv -f latin1 -t utf-8"
                ) from None
            buffer.append(text.strip())
            if len(buffer) >= buffer_size:
                yield buffer
                buffer = []
    finally:
        if source != "-":
            handle.close()
    if buffer:
        yield buffer


def patch_interactive():
    """Give a loaded ``fairseq_cli.interactive`` our line reader (idempotent).

    fairseq imports the plugin (``--user-dir``) while parsing the command
    line, after ``fairseq_cli.interactive`` itself is imported."""
    module = sys.modules.get("fairseq_cli.interactive")
    if module is not None and module.buffered_read is not read_input_lines:
        module.buffered_read = read_input_lines


def _help_after_plugin_options():
    """``--help`` lists the task's, model's and criterion's options too.

    fairseq's ``parse_args_and_arch`` parses twice: the first pass (core
    options only) reads ``--task``/``--arch``/``--criterion``, then their
    options are added and the second pass parses everything.  ``-h`` fires
    in the first pass, so fairseq's help never shows a task or model option
    (e.g. none of ``nat_translation``'s decoding flags and their defaults).
    The plugin is imported between the two passes' set-up (``--user-dir``),
    so we make the help action skip the first pass of that function.
    """
    original = argparse._HelpAction.__call__
    if getattr(original, "_nat_plugins_patched", False):
        return
    try:
        from fairseq import options
    except ImportError:
        return

    first_pass_code = options.parse_args_and_arch.__code__

    def __call__(self, parser, namespace, values, option_string=None):
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code is first_pass_code:
                # ``args`` is bound once the first pass has returned.
                if "args" not in frame.f_locals:
                    return
                break
            frame = frame.f_back
        original(self, parser, namespace, values, option_string)

    __call__._nat_plugins_patched = True
    argparse._HelpAction.__call__ = __call__


def forget_idle_meters(pattern):
    """Drop the meters whose name matches ``pattern`` (a compiled regex) and
    that hold no value since fairseq last reset them.

    fairseq resets its per-log-interval meters but keeps their names, so a
    quantity not measured in an interval (e.g. a DiffGLAT level that was not
    sampled) is printed as ``loss_t3=None``.  Called from a criterion's
    ``reduce_metrics`` before it logs, so only the measured ones are printed.
    """
    from fairseq.logging import metrics
    from fairseq.logging.meters import AverageMeter

    for aggregator in metrics.get_active_aggregators():
        idle = [key for key, meter in aggregator.items()
                if pattern.match(key) and isinstance(meter, AverageMeter) and meter.count == 0]
        for key in idle:
            del aggregator[key]
        if idle:  # fairseq re-sorts by this list whenever a meter is added
            aggregator.priorities = [entry for entry in aggregator.priorities if entry[2] not in idle]


_installed = False


def install():
    """Apply every shim (idempotent)."""
    global _installed
    if _installed:
        return
    _install_numpy_aliases()
    _install_safe_globals()
    _keep_last_batch()
    _patch_hydra_label_smoothing()
    from . import checkpoint_io

    checkpoint_io.install()
    patch_interactive()
    _help_after_plugin_options()
    _installed = True


install()
