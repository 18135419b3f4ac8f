"""CMLM training loss (Ghazvininejad et al. 2019, §3.1).

Mask ``k ~ U{1..N}`` target tokens (:func:`~nat_plugins.modules.noise.uniform_mask`),
label-smoothed cross-entropy on the masked positions only, plus the length
loss weighted by the model's ``--length-loss-factor``.

Normalisation follows fairseq's ``nat_loss`` (mean over masked tokens plus
factor x mean over sentences, ``sample_size = 1``) so that parity runs
against stock ``cmlm_transformer`` optimise the same objective.
"""
import math
from dataclasses import dataclass, field

from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from ..modules.losses import label_smoothed_nll
from ..modules.noise import uniform_mask

__all__ = ["CMLMLoss"]


@dataclass
class CMLMLossConfig(FairseqDataclass):
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing epsilon"})


@register_criterion("cmlm_loss", dataclass=CMLMLossConfig)
class CMLMLoss(FairseqCriterion):
    def __init__(self, task, label_smoothing=0.1):
        super().__init__(task)
        self.eps = label_smoothing

    @staticmethod
    def real_target(model, sample):
        """``(target [B, L] with pad at every non-content position, real [B, L] bool)``."""
        real = model.real_target_mask(sample["target"])
        return sample["target"].masked_fill(~real, model.pad), real

    @staticmethod
    def encode_with_length(model, sample, real):
        """``(encoder_out, summed length NLL)`` for the batch's sources and true lengths ``real.sum(1)``."""
        src_tokens = sample["net_input"]["src_tokens"]
        encoder_out = model.encode(src_tokens, sample["net_input"]["src_lengths"])
        length_nll = model.length_predictor.loss(
            model.length_logits(encoder_out), real.sum(1), model.source_lengths(src_tokens))
        return encoder_out, length_nll

    def forward(self, model, sample, reduce=True):
        target, real = self.real_target(model, sample)
        noised, masked = uniform_mask(target, real, model.mask_idx)
        encoder_out, length_nll = self.encode_with_length(model, sample, real)
        features = model.decoder.features(noised, encoder_out)
        # Project only masked positions to the vocabulary: the other
        # positions carry no loss, and the output layer dominates the cost.
        logits = model.decoder.output_layer(features[masked])
        tok_loss, tok_nll = label_smoothed_nll(logits, target[masked], self.eps)

        n_masked = masked.sum().clamp(min=1)
        nsentences = target.size(0)
        word_loss = tok_loss.sum() / n_masked
        length_loss = length_nll / nsentences
        loss = word_loss + model.length_loss_factor * length_loss
        return loss, 1, self.logging_output(loss, tok_nll.sum() / n_masked, word_loss, length_loss, real)

    @staticmethod
    def logging_output(loss, nll_loss, word_loss, length_loss, real, **extra):
        """The logged parts (``sample_size`` 1: every loss is already a mean); ``real [B, L]`` real tokens."""
        out = {"loss": loss.detach(), "nll_loss": nll_loss.detach(), "word_ins_loss": word_loss.detach(),
               "length_loss": length_loss.detach(), "ntokens": int(real.sum()), "nsentences": real.size(0),
               "sample_size": 1}
        out.update({key: value.detach() for key, value in extra.items()})
        return out

    #: logged in bits; a key no batch logged (e.g. PML's middle loss at --pml-layer 0) is left out
    LOGGED = ("loss", "nll_loss", "word_ins_loss", "length_loss", "middle_loss", "middle_nll_loss")

    @classmethod
    def reduce_metrics(cls, logging_outputs):
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        for key in cls.LOGGED:
            if any(key in log for log in logging_outputs):
                value = sum(float(log.get(key, 0)) for log in logging_outputs)
                metrics.log_scalar(key, value / sample_size / math.log(2), sample_size, round=3)
        metrics.log_derived("ppl", lambda meters: 2 ** meters["nll_loss"].avg if meters["nll_loss"].avg < 100 else float("inf"))

    @staticmethod
    def logging_outputs_can_be_summed():
        return True
