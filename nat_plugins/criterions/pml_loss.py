"""Vanilla NAR loss with progressive modality learning (PML; DiffGLAT, Qian et al. 2023, §2.2 and App. A).

The model is the plugin's NAT encoder-decoder (``--arch cmlm_*``) used as a
*vanilla* NAR: its decoder input is the all-``<mask>`` canvas of the target
length, and it predicts every target token at once (the CMLM with every token
masked, i.e. the one-pass Mask-Predict model).  Decoding it is Mask-Predict
with ``--decode-iterations 1``.

Loss, per batch (token losses are label-smoothed NLL averaged over the real
target tokens; the length loss is the CMLM's)::

    L = L_last(y) + [pml_layer > 0] * L_middle(y_merged) + length_loss_factor * L_length

* ``L_last``: the usual output (the last decoder layer) against the target ``y``
  with all of its modalities (four in Table 2);
* ``L_middle``: the output of the first ``--pml-layer`` decoder layers, through the
  decoder's final layer norm and output projection (the same ones the last layer
  uses), against ``y_merged``: the target with modalities merged, I -> II and
  III -> IV, so the middle layer learns two modalities (App. A, "Model Setup").

``--pml-layer 0`` is the vanilla NAR of Table 2.

Readings of the paper (it gives no more detail):

* The two losses are summed with equal weight ("besides the original NAR training
  loss ..., we also train the NAR model to learn 2 modalities with the middle
  decoder layer").
* The middle layer's prediction shares the output projection and final layer norm
  with the last layer; the paper does not mention extra parameters.
* The merged targets are data, not a rule in this criterion: ``--pml-merged-targets
  DIR`` names a folder holding ``train.merged`` and ``valid.merged`` (one
  whitespace-tokenized target per line, in the order of the binarized split, as
  ``scripts/data/synthetic_multimodality.py make-data`` writes them).  A batch's rows are
  looked up by fairseq's sample ``id``; training batches read ``train.merged``,
  validation batches (model in eval mode) ``valid.merged``.
"""
import os
from dataclasses import dataclass, field

import torch
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from ..errors import NATUserError
from ..modules.losses import label_smoothed_nll
from .cmlm_loss import CMLMLoss

__all__ = ["PMLLoss", "load_merged_targets"]


@dataclass
class PMLLossConfig(FairseqDataclass):
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing epsilon"})
    pml_layer: int = field(default=0, metadata={
        "help": "decoder layer whose output also learns the merged targets (App. A: the middle layer); 0 = vanilla NAR"})
    pml_merged_targets: str = field(default="", metadata={
        "help": "folder with train.merged and valid.merged (targets with modalities merged); needed when --pml-layer > 0"})


def load_merged_targets(path, dictionary):
    """``[tokens [L_i] long]`` of every line of ``path``, encoded without adding ``</s>``."""
    try:
        with open(path, encoding="utf-8", newline="\n") as handle:
            lines = handle.read().split("\n")
    except OSError as exc:
        raise NATUserError(f"--pml-merged-targets: cannot read {path}: {exc.strerror}") from exc
    if lines and lines[-1] == "":
        lines.pop()
    return [dictionary.encode_line(line, add_if_not_exist=False, append_eos=False).long() for line in lines]


@register_criterion("pml_loss", dataclass=PMLLossConfig)
class PMLLoss(FairseqCriterion):
    def __init__(self, task, label_smoothing=0.1, pml_layer=0, pml_merged_targets=""):
        super().__init__(task)
        self.eps = label_smoothing
        self.pml_layer = int(pml_layer)
        self.merged = {}
        if self.pml_layer < 0:
            raise NATUserError(f"--pml-layer must be >= 0, got {pml_layer}")
        if self.pml_layer > 0:
            if not pml_merged_targets:
                raise NATUserError("--pml-layer > 0 needs --pml-merged-targets DIR (train.merged, valid.merged)")
            for split in ("train", "valid"):
                self.merged[split] = load_merged_targets(
                    os.path.join(pml_merged_targets, f"{split}.merged"), task.target_dictionary)

    def merged_target(self, sample, like, split):
        """``[B, L]`` merged targets of the batch's rows, aligned with ``like`` (the real-token target)."""
        table = self.merged[split]
        out = torch.full_like(like, self.padding_idx)
        for row, index in enumerate(sample["id"].tolist()):
            if index >= len(table):
                raise NATUserError(f"--pml-merged-targets has {len(table)} lines; sample id {index} is beyond it")
            tokens = table[index]
            if tokens.numel() != int(like[row].ne(self.padding_idx).sum()):
                raise NATUserError(f"merged target of sample {index} has {tokens.numel()} tokens, its target "
                                   f"{int(like[row].ne(self.padding_idx).sum())}: are the .merged files of this data?")
            out[row, :tokens.numel()] = tokens.to(out.device)
        return out

    def forward(self, model, sample, reduce=True):
        target, real = CMLMLoss.real_target(model, sample)
        canvas = target.masked_fill(real, model.mask_idx)  # vanilla NAR: every position masked
        encoder_out, length_nll = CMLMLoss.encode_with_length(model, sample, real)
        decoder = model.decoder
        x, padding_mask = decoder.embed(canvas)
        n_tokens = real.sum().clamp(min=1)
        nsentences = target.size(0)
        log = {}
        middle_loss = target.new_zeros((), dtype=torch.float)
        if self.pml_layer > 0:
            if self.pml_layer >= len(decoder.layers):
                raise NATUserError(f"--pml-layer {self.pml_layer} must be below the decoder's "
                                   f"{len(decoder.layers)} layers")
            x = decoder.run_layers(x, encoder_out, padding_mask, end=self.pml_layer)
            merged = self.merged_target(sample, target, "train" if model.training else "valid")
            logits = decoder.output_layer(decoder.finalize(x)[real])
            loss_m, nll_m = label_smoothed_nll(logits, merged[real], self.eps)
            middle_loss = loss_m.sum() / n_tokens
            log["middle_loss"] = middle_loss
            log["middle_nll_loss"] = nll_m.sum() / n_tokens
            x = decoder.run_layers(x, encoder_out, padding_mask, start=self.pml_layer)
        else:
            x = decoder.run_layers(x, encoder_out, padding_mask)
        logits = decoder.output_layer(decoder.finalize(x)[real])
        tok_loss, tok_nll = label_smoothed_nll(logits, target[real], self.eps)
        word_loss = tok_loss.sum() / n_tokens
        length_loss = length_nll / nsentences
        loss = word_loss + middle_loss + model.length_loss_factor * length_loss
        return loss, 1, CMLMLoss.logging_output(loss, tok_nll.sum() / n_tokens, word_loss, length_loss, real, **log)

    reduce_metrics = CMLMLoss.reduce_metrics

    @staticmethod
    def logging_outputs_can_be_summed():
        return True
