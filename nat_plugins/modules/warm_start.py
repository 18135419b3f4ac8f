"""Warm start of a NAT model from an autoregressive baseline (``--init-from-ar PATH``).

A NAT model of this plugin has fairseq's own ``TransformerEncoder``, the
encoder of fairseq's ``transformer`` too.  So an AR baseline trained on the
same data already holds an encoder (token embeddings, positions, layers,
layer norms) that the NAT can start from, instead of a random one; only the
NAT's decoder and length predictor start from scratch.  Starting the NAT's
encoder from a trained AR model is a NAT training aid of ours in this plugin
(no paper among the project's references describes it, so none is cited);
whether it helps is measured, not assumed (``benchmarks/learning_curves.md``).

When it applies (:func:`warm_start_from_args`, called by the
``nat_translation`` task's ``build_model``):

* only for a training run that starts from scratch: a run that will resume
  from a checkpoint (``checkpoint_last.pt`` or ``--restore-file``) loads the
  NAT's own trained weights instead, and the AR file is not even read;
* never at inference: the copied weights are part of every NAT checkpoint,
  and fairseq builds models from checkpoints with ``from_checkpoint=True``.

What is copied (:func:`copy_ar_encoder`): every ``encoder.*`` parameter and
buffer whose name the NAT encoder shares with the AR encoder (learned
positions only when their shapes match; sinusoidal ones have no weights), and
the shared token embeddings, which the NAT decoder reads too when embeddings
are shared (``--share-all-embeddings``, the plugin's default).  A different
dictionary, encoder depth or width is an error of one line
(:class:`~nat_plugins.errors.NATUserError`), never a silent partial copy.

The AR checkpoint is read with torch's safe (weights-only) unpickler and the
plugin's allow-list (:func:`nat_plugins.checkpoint_io.read_checkpoint`).
"""
import logging
import os
import re

import torch

from ..errors import NATUserError

logger = logging.getLogger(__name__)

__all__ = ["copy_ar_encoder", "resume_checkpoint", "warm_start_from_args"]

#: state-dict entries that carry no weights (version counters, sinusoid caches)
_NOT_WEIGHTS = re.compile(r"(^|\.)(version|_float_tensor)$")
#: positional-embedding entries: copied when shapes match, skipped otherwise
_POSITIONS = re.compile(r"^encoder\.embed_positions\.")
_CHECKPOINT_NAME = re.compile(r"^checkpoint(\d+|_\d+_\d+|_last|_best)\.pt$")


def resume_checkpoint(args):
    """The checkpoint a training run with ``args`` will resume from, or None when it starts from scratch.

    Mirrors fairseq's rule (``checkpoint_utils.load_checkpoint``): the default
    ``--restore-file checkpoint_last.pt`` means ``<save-dir>/checkpoint_last.pt``;
    any other value is a path.  The plugin resumes from the newest readable
    checkpoint when ``checkpoint_last.pt`` is damaged, so any checkpoint in
    the save directory counts as "will resume".
    """
    restore = getattr(args, "restore_file", None) or "checkpoint_last.pt"
    save_dir = getattr(args, "save_dir", None) or "checkpoints"
    if restore != "checkpoint_last.pt":
        return restore if os.path.exists(restore) else None
    if os.path.isdir(save_dir):
        for name in sorted(os.listdir(save_dir)):
            if _CHECKPOINT_NAME.match(name):
                return os.path.join(save_dir, name)
    return None


def _read_ar_checkpoint(path):
    from ..checkpoint_io import read_checkpoint

    if not os.path.isfile(path):
        raise NATUserError(f"--init-from-ar {path}: no such file (train the AR baseline first)")
    state = read_checkpoint(path)
    if not isinstance(state.get("model"), dict):
        raise NATUserError(f"--init-from-ar {path}: not a fairseq model checkpoint (no 'model' weights)")
    return state


def _ar_dictionary_symbols(state, source_lang):
    """Symbols of the AR's source dictionary when its data directory is still readable, else None."""
    cfg = state.get("cfg") or {}
    task = cfg.get("task") if isinstance(cfg, dict) else None
    data = (task or {}).get("data") if isinstance(task, dict) else None
    args = state.get("args")
    if data is None and args is not None:
        data = getattr(args, "data", None)
    lang = ((task or {}).get("source_lang") if isinstance(task, dict) else None) or source_lang
    if not data or not lang:
        return None
    path = os.path.join(str(data).split(os.pathsep)[0], f"dict.{lang}.txt")
    if not os.path.isfile(path):
        return None
    from fairseq.data import Dictionary

    return Dictionary.load(path).symbols


def copy_ar_encoder(model, ar_state, source_lang=None, origin="the AR checkpoint"):
    """Copy the AR's encoder and token embeddings into NAT ``model`` in place; return the names copied.

    ``ar_state`` is a loaded fairseq checkpoint (a dict with ``model``).
    Raises :class:`NATUserError` on a dictionary, architecture or shape
    mismatch, before anything is changed.
    """
    weights = ar_state["model"]
    own = model.state_dict()
    vocab = model.encoder.embed_tokens.weight.size(0)
    ar_emb = weights.get("encoder.embed_tokens.weight")
    if ar_emb is None:
        raise NATUserError(f"--init-from-ar: {origin} has no encoder token embeddings (is it a fairseq transformer?)")
    if ar_emb.size(0) != vocab:
        raise NATUserError(f"--init-from-ar: {origin} has a {ar_emb.size(0)}-symbol dictionary and this run's has "
                           f"{vocab}; train the AR baseline on the same data-bin (joined dictionary)")
    symbols = _ar_dictionary_symbols(ar_state, source_lang)
    if symbols is not None and list(symbols) != list(model.encoder.dictionary.symbols):
        raise NATUserError(f"--init-from-ar: {origin} was trained with another dictionary than this run's "
                           "(same size, different symbols); train the AR baseline on the same data-bin")
    wanted = [k for k in own if k.startswith("encoder.") and not _NOT_WEIGHTS.search(k)]
    theirs = {k for k in weights if k.startswith("encoder.") and not _NOT_WEIGHTS.search(k)}
    missing = [k for k in wanted if k not in weights and not _POSITIONS.match(k)]
    extra = sorted(k for k in theirs - set(own) if not _POSITIONS.match(k))
    if missing or extra:
        what = f"the NAT encoder has {missing[0]}" if missing else f"the AR encoder has {extra[0]}"
        raise NATUserError(f"--init-from-ar: the encoders differ ({what} and the other does not); use the same "
                           "encoder layers, width and normalization for both models")
    copies = {}
    for key in wanted:
        if key not in weights:
            continue  # positions the AR model does not learn (checked above: only positions can be absent)
        source, target = weights[key], own[key]
        if source.shape != target.shape:
            if _POSITIONS.match(key):
                logger.info("--init-from-ar: %s kept (shape %s here, %s in %s)", key, tuple(target.shape),
                            tuple(source.shape), origin)
                continue
            raise NATUserError(f"--init-from-ar: {key} has shape {tuple(source.shape)} in {origin} and "
                               f"{tuple(target.shape)} here; use the same encoder width and FFN size")
        copies[key] = source
    if not getattr(model.args, "share_all_embeddings", False):
        # The decoder's own token embeddings: the AR decoder's, when they have the same shape.
        ar_dec = weights.get("decoder.embed_tokens.weight")
        if ar_dec is not None and ar_dec.shape == own["decoder.embed_tokens.weight"].shape:
            copies["decoder.embed_tokens.weight"] = ar_dec
    with torch.no_grad():
        for key, value in copies.items():
            own[key].copy_(value.to(own[key].dtype))  # state_dict tensors share storage with the parameters
    return sorted(copies)


def warm_start_from_args(model, args, source_lang=None):
    """Apply ``--init-from-ar`` of a training run built from ``args`` (no-op without the flag or when resuming).

    Returns the copied names (empty when nothing was done).
    """
    path = getattr(args, "init_from_ar", None)
    if not path:
        return []
    if getattr(args, "finetune_from_model", None):
        raise NATUserError("--init-from-ar and --finetune-from-model both set the starting weights; pass one of them")
    resume = resume_checkpoint(args)
    if resume is not None:
        logger.info("--init-from-ar %s not applied: the run resumes from %s", path, resume)
        return []
    state = _read_ar_checkpoint(path)
    copied = copy_ar_encoder(model, state, source_lang=source_lang, origin=path)
    count = sum(model.state_dict()[k].numel() for k in copied)
    logger.info("--init-from-ar: copied %d encoder tensors (%d weights, token embeddings included) from %s",
                len(copied), count, path)
    return copied
