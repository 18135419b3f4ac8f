#!/usr/bin/env python3
"""Average the parameters of several fairseq checkpoints.

fairseq wheels do not ship an averaging tool (REFERENCE §1), and the usual
one re-saves what ``checkpoint_utils.load_checkpoint_to_cpu`` returns: OmegaConf
objects that torch's weights-only loader rejects.  This tool instead reads
each checkpoint raw with ``torch.load(weights_only=True)`` (through
``nat_plugins.compat.load_checkpoint_file`` and its small allow-list), so the
output holds only what the inputs held and loads in ``fairseq-generate``
without any environment variable.

Selection (one of):

* ``--inputs FILE ...``: exactly these files;
* ``--last N`` in ``--dir``: the N newest by update number
  (``checkpoint_<epoch>_<updates>.pt``), or by epoch (``checkpoint<epoch>.pt``)
  when there are no update-numbered ones;
* ``--best N`` in ``--dir``: the N best by the validation metric fairseq
  stored in each checkpoint (``extra_state["val_loss"]``, which holds the
  value of ``--best-checkpoint-metric`` despite its name), in the direction
  of ``--maximize-best-checkpoint-metric`` as recorded in the checkpoint; the
  value in ``checkpoint.best_<metric>_<value>.pt`` names is the fallback.

Floating-point tensors are summed in float64 and divided once, then cast
back, so the mean is exact to the output precision whatever the order.
Non-float tensors (step counters, version buffers) are copied from the
newest input.  Optimizer state is dropped: it belongs to one run and would
only triple the file size.  The output is written to a temporary file and
moved into place, so a crash never leaves a truncated checkpoint.
"""
import argparse
import os
import re
import sys

import torch

_UPDATE_CKPT = re.compile(r"^checkpoint_(\d+)_(\d+)\.pt$")
_EPOCH_CKPT = re.compile(r"^checkpoint(\d+)\.pt$")
# fairseq appends a random tie-breaking digit after the 3 decimals
_BEST_CKPT = re.compile(r"^checkpoint\.best_(.+)_(-?\d+\.\d{3})\d*\.pt$")


class AverageError(ValueError):
    """The checkpoints cannot be selected or averaged."""


def _checkpoint_io():
    try:
        from nat_plugins import checkpoint_io
    except ImportError:  # run as scripts/evaluation/average_checkpoints.py from a checkout
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        from nat_plugins import checkpoint_io
    return checkpoint_io


class UnreadableInput(AverageError):
    """One input checkpoint cannot be read (missing, truncated, refused by the safe loader)."""


def load_checkpoint(path):
    """Read one checkpoint with the weights-only loader and our allow-list."""
    checkpoint_io = _checkpoint_io()
    try:
        state = checkpoint_io.read_checkpoint(path)
    except checkpoint_io.UnreadableCheckpoint as error:
        raise UnreadableInput(str(error)) from None
    if "model" not in state:
        raise AverageError(f"{path} is not a fairseq checkpoint (no 'model' entry)")
    return state


# --------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------


def last_checkpoints(directory, count, allow_fewer=False):
    """The ``count`` newest periodic checkpoints in ``directory``, newest first.

    Update-numbered checkpoints win over epoch ones when both exist: with
    ``--save-interval-updates`` they are the finer-grained series.
    ``checkpoint_last.pt`` joins the series when it is newer than all of
    it: training stopped by ``--stop-time-hours`` or ``--max-update`` between
    two save intervals leaves its final state only there.
    ``allow_fewer``: return what exists (at least one) instead of failing.
    """
    names = _list_dir(directory)
    by_update = sorted(
        ((int(m.group(2)), name) for name in names if (m := _UPDATE_CKPT.match(name))), reverse=True
    )
    by_epoch = sorted(((int(m.group(1)), name) for name in names if (m := _EPOCH_CKPT.match(name))), reverse=True)
    series = []
    for name in (name for _, name in (by_update or by_epoch)):
        if len(series) == count:
            break
        # An interrupted save can leave a truncated file: name it and take the next one.
        if _readable_or_warn(os.path.join(directory, name)):
            series.append(os.path.join(directory, name))
    last = os.path.join(directory, "checkpoint_last.pt")
    if os.path.exists(last) and _readable_or_warn(last) and _is_newer(last, series[0] if series else None):
        series.insert(0, last)
    if not series or (len(series) < count and not allow_fewer):
        raise AverageError(
            f"asked for the last {count} checkpoints but {directory} has {len(series)} "
            "(checkpoint_<epoch>_<updates>.pt, checkpoint<epoch>.pt or checkpoint_last.pt)"
        )
    return series[:count]


def _readable_or_warn(path):
    try:
        load_checkpoint(path)
    except UnreadableInput as error:
        print(f"average_checkpoints.py: skipping {path}: {error}", file=sys.stderr)
        return False
    return True


def _is_newer(path, other):
    """True when checkpoint ``path`` holds more updates than ``other`` (or ``other`` is None)."""
    if other is None:
        return True
    return (_num_updates(load_checkpoint(path)) or 0) > (_num_updates(load_checkpoint(other)) or 0)


def _list_dir(directory):
    try:
        return os.listdir(directory)
    except OSError as error:
        raise AverageError(f"cannot list {directory}: {error.strerror or error}") from error


def _recorded_metric(state):
    """``(value, metric_name, maximize)`` recorded by fairseq in a checkpoint."""
    value = (state.get("extra_state") or {}).get("val_loss")
    cfg = state.get("cfg") or {}
    ckpt_cfg = cfg.get("checkpoint") if isinstance(cfg, dict) else None
    if ckpt_cfg:
        name, maximize = ckpt_cfg.get("best_checkpoint_metric"), ckpt_cfg.get("maximize_best_checkpoint_metric")
    else:
        args = state.get("args")
        name = getattr(args, "best_checkpoint_metric", None)
        maximize = getattr(args, "maximize_best_checkpoint_metric", None)
    return value, name, maximize


def _num_updates(state):
    history = state.get("optimizer_history") or [{}]
    return history[-1].get("num_updates")


def best_checkpoints(directory, count, maximize=None):
    """The ``count`` best checkpoints in ``directory`` by their recorded
    validation metric, best first.  Copies of one model (``checkpoint_last``,
    ``checkpoint_best``, ``checkpoint.best_*``) count once."""
    candidates = {}
    for name in sorted(_list_dir(directory)):
        if not (_UPDATE_CKPT.match(name) or _EPOCH_CKPT.match(name) or _BEST_CKPT.match(name)):
            continue
        path = os.path.join(directory, name)
        state = load_checkpoint(path)
        value, metric, recorded_max = _recorded_metric(state)
        from_name = _BEST_CKPT.match(name)
        if value is None and from_name:
            value, metric = float(from_name.group(2)), from_name.group(1)
        if value is None:
            continue
        key = _num_updates(state) or path
        candidates.setdefault(key, (float(value), path, metric, recorded_max))
        del state
    if len(candidates) < count:
        raise AverageError(
            f"asked for the best {count} checkpoints but only {len(candidates)} distinct ones in {directory} "
            "record a validation metric"
        )
    entries = list(candidates.values())
    if maximize is None:
        recorded = {entry[3] for entry in entries if entry[3] is not None}
        if len(recorded) > 1:
            raise AverageError("checkpoints disagree on --maximize-best-checkpoint-metric; pass --maximize/--minimize")
        if recorded:
            maximize = recorded.pop()
        else:  # only filenames to go on: losses go down, anything else (bleu) up
            metric = entries[0][2] or "loss"
            maximize = "loss" not in metric
    entries.sort(key=lambda entry: entry[0], reverse=maximize)
    return [entry[1] for entry in entries[:count]]


# --------------------------------------------------------------------------
# Averaging
# --------------------------------------------------------------------------


def architecture_name(state):
    """The model architecture recorded in a checkpoint (hydra cfg or argparse args)."""
    cfg = state.get("cfg")
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else None
    if isinstance(model_cfg, dict):
        return model_cfg.get("arch") or model_cfg.get("_name")
    if model_cfg is not None:  # argparse.Namespace kept in cfg["model"]
        return getattr(model_cfg, "arch", None) or getattr(model_cfg, "_name", None)
    return getattr(state.get("args"), "arch", None)


def check_compatible(reference, reference_path, state, path):
    """Raise :class:`AverageError` unless ``state`` has the architecture,
    parameter names, shapes and dtypes of ``reference``."""
    arch_a, arch_b = architecture_name(reference), architecture_name(state)
    if arch_a != arch_b:
        raise AverageError(f"different architectures: {reference_path} is {arch_a}, {path} is {arch_b}")
    model_a, model_b = reference["model"], state["model"]
    if model_a.keys() != model_b.keys():
        only_a = sorted(model_a.keys() - model_b.keys())[:3]
        only_b = sorted(model_b.keys() - model_a.keys())[:3]
        raise AverageError(
            f"different parameter sets in {reference_path} and {path} "
            f"(only in the first: {only_a}, only in the second: {only_b})"
        )
    for name, tensor in model_a.items():
        other = model_b[name]
        if tensor.shape != other.shape or tensor.dtype != other.dtype:
            raise AverageError(
                f"parameter {name} differs: {tuple(tensor.shape)} {tensor.dtype} in {reference_path}, "
                f"{tuple(other.shape)} {other.dtype} in {path}"
            )


def average_checkpoints(paths):
    """Return a checkpoint dict whose float parameters are the exact mean of
    those in ``paths``; everything else comes from ``paths[0]`` (give the
    newest first)."""
    if not paths:
        raise AverageError("no checkpoints to average")
    if len(set(map(os.path.realpath, paths))) != len(paths):
        raise AverageError("the same checkpoint is listed twice")
    template = load_checkpoint(paths[0])
    sums = {
        name: tensor.to(torch.float64)
        for name, tensor in template["model"].items()
        if torch.is_floating_point(tensor)
    }
    for path in paths[1:]:
        state = load_checkpoint(path)
        check_compatible(template, paths[0], state, path)
        for name in sums:
            sums[name] += state["model"][name].to(torch.float64)
        del state
    averaged = dict(template["model"])
    for name, total in sums.items():
        averaged[name] = (total / len(paths)).to(template["model"][name].dtype)
    template["model"] = type(template["model"])(averaged)
    template.pop("last_optimizer_state", None)
    template.setdefault("extra_state", {})
    if isinstance(template["extra_state"], dict):
        template["extra_state"]["averaged_from"] = [os.path.basename(path) for path in paths]
    return template


def save_atomically(state, output):
    """``torch.save`` to a temp file in the output folder, fsync, then ``os.replace``."""
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    _checkpoint_io().atomic_torch_save(state, output)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def select(args):
    if args.inputs:
        return args.inputs
    if args.last:
        return last_checkpoints(args.dir, args.last, allow_fewer=args.allow_fewer)
    return best_checkpoints(args.dir, args.best, maximize=args.maximize)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Average fairseq checkpoints (exact float64 mean; weights-only loading; atomic write).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--inputs", nargs="+", metavar="FILE", help="checkpoints to average (newest first)")
    which.add_argument("--last", type=int, metavar="N", help="the N newest checkpoints in --dir")
    which.add_argument("--best", type=int, metavar="N", help="the N best checkpoints in --dir by validation metric")
    parser.add_argument("--dir", help="checkpoint folder for --last / --best")
    parser.add_argument("--allow-fewer", action="store_true", help="with --last: average what exists if fewer than N")
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument("--maximize", dest="maximize", action="store_true", default=None)
    direction.add_argument("--minimize", dest="maximize", action="store_false")
    parser.add_argument("--output", required=True, help="averaged checkpoint to write")
    args = parser.parse_args(argv)
    if (args.last is not None or args.best is not None) and not args.dir:
        parser.error("--last/--best need --dir")
    if (args.last is not None and args.last < 1) or (args.best is not None and args.best < 1):
        parser.error("N must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        if os.path.isdir(args.output):
            raise AverageError(f"--output {args.output} is a directory; give a file name, e.g. "
                               f"{os.path.join(args.output, 'averaged.pt')}")
        paths = select(args)
        print(f"averaging {len(paths)} checkpoints: {' '.join(paths)}", file=sys.stderr)
        save_atomically(average_checkpoints(paths), args.output)
    except AverageError as error:
        print(f"average_checkpoints.py: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
