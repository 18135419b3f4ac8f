"""Checks of ``nat_translation`` runs that turn silent failures into one-line errors.

Each check answers a case where fairseq would otherwise train or decode
nothing useful without saying so, or crash with a traceback:

* :func:`check_nat_flags_unused`: NAT-only decoding flags given to a run
  whose model is not one of the plugin's NAT models (they would be ignored);
* :func:`check_ensemble`: the ``--path`` list fits the NAT generator
  (the NAT model first; with ``--decode-ar-rerank`` an AR model second);
* :func:`check_decoding_values`: finite numbers, and a ``--length-beam`` no
  larger than the number of lengths the model can produce;
* :class:`TrainedSentenceCounter`: stop a training in which every target was
  skipped as too long for its graph (DA-Transformer, DiffGLAT) before an
  untrained model is saved as "best";
* :func:`max_tokens_error`: ``--max-tokens`` smaller than one sentence.
"""
import dataclasses
import math

import numpy as np

from ..errors import NATUserError

__all__ = ["check_nat_flags_unused", "check_ensemble", "check_decoding_values", "TrainedSentenceCounter",
           "max_tokens_error", "line_label"]


def _nat_only_fields(config_cls, base_cls):
    base = {f.name for f in dataclasses.fields(base_cls)}
    return [f for f in dataclasses.fields(config_cls) if f.name not in base and f.name != "eval_bleu_tok"]


def _default(field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def check_nat_flags_unused(cfg, config_cls, base_cls, model):
    """Raise when a flag of ``config_cls`` (the task's dataclass) that ``base_cls``
    (fairseq's) lacks differs in ``cfg`` from its default although ``model`` is
    not a plugin NAT model (fairseq's generator ignores such flags)."""
    for field in _nat_only_fields(config_cls, base_cls):
        value = getattr(cfg, field.name, None)
        if value is not None and str(value) != str(_default(field)):
            raise NATUserError(
                f"--{field.name.replace('_', '-')} applies only to the plugin's NAT models, but the first --path is "
                f"a {type(model).__name__} (decoded by fairseq's own generator); drop the flag")


def check_ensemble(models, is_nat, ar_rerank):
    """The NAT model must come first; with ``ar_rerank`` exactly one AR model follows it."""
    if any(is_nat(m) for m in models) and not is_nat(models[0]):
        raise NATUserError("the NAT checkpoint must come first in --path (--path NAT.pt:AR.pt with --decode-ar-rerank)")
    if not is_nat(models[0]):
        return
    if ar_rerank:
        if len(models) != 2:
            raise NATUserError("--decode-ar-rerank needs --path NAT.pt:AR.pt (exactly two checkpoints)")
        if is_nat(models[1]):
            raise NATUserError(f"--decode-ar-rerank needs an autoregressive second --path, but it is a "
                               f"{type(models[1]).__name__}, a NAT model")
    elif len(models) > 1:
        raise NATUserError("NAT models cannot be ensembled; pass one --path (or add --decode-ar-rerank for NAT.pt:AR.pt)")


def check_decoding_values(options, model):
    """Reject non-finite numbers and a length beam beyond what the model can decode."""
    values = {"decode_temperature": options.temperature, **options.extra}
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise NATUserError(f"--{name.replace('_', '-')} must be a finite number, not {value}")
    limit = model.max_decoder_positions() if hasattr(model, "max_decoder_positions") else None
    if limit and options.length_beam > limit:
        raise NATUserError(f"--length-beam {options.length_beam} exceeds the {limit} target lengths this model can "
                           "produce (its maximum target positions); the papers use 1 to 5")


class TrainedSentenceCounter:
    """Counts sentences seen and skipped (``skipped`` in a criterion's logging
    output) per training run and per validation pass.

    :meth:`check` raises once training has seen sentences but trained on none,
    or the last validation pass skipped all of its sentences: the loss is then
    0 with a zero gradient, and fairseq would save the untrained model with
    ``best_loss 0``.
    """

    def __init__(self):
        self.counts = {"train": [0, 0], "valid": [0, 0]}

    def add(self, phase, logging_output):
        skipped = logging_output.get("skipped")
        if skipped is None:
            return  # the criterion never skips
        seen = logging_output.get("nsentences", 0)
        self.counts[phase][0] += int(seen)
        self.counts[phase][1] += int(skipped)

    def reset_valid(self):
        self.counts["valid"] = [0, 0]

    def check(self, hint):
        for phase, (seen, skipped) in self.counts.items():
            if seen > 0 and skipped >= seen:
                raise NATUserError(
                    f"every {phase} target so far ({seen} sentences) was skipped as longer than its graph, so "
                    f"nothing is {'trained' if phase == 'train' else 'validated'}; {hint}")


def line_label(dataset, index):
    """Human name of sentence ``index`` of ``dataset``: the input line number
    for ``fairseq-interactive`` chunks (see the task's
    ``build_dataset_for_inference``), else the index within the split."""
    first = getattr(dataset, "nat_first_line", None)
    if first is not None:
        return f"input line {first + int(index)}"
    return f"sentence #{index} (line {int(index) + 1} of the split)"


def max_tokens_error(exc, dataset, max_tokens):
    """A :class:`NATUserError` for fairseq's batching assertion that a sentence
    exceeds ``--max-tokens``, or None for any other assertion."""
    if not max_tokens or "max_tokens" not in str(exc):
        return None
    sizes = dataset.num_tokens_vec(np.arange(len(dataset)))
    over = np.flatnonzero(sizes > max_tokens)
    if over.size == 0:
        return None
    first = int(over[0])
    return NATUserError(
        f"{over.size} sentence(s) exceed --max-tokens {max_tokens}, e.g. {line_label(dataset, first)} with "
        f"{int(sizes[first])} tokens; raise --max-tokens, or add --skip-invalid-size-inputs-valid-test to skip them")
