"""SUNDAE's unrolled denoising loss (Savinov et al. 2022, §2.1, App. A.3, App. J).

For a clean target canvas ``x`` (real tokens, then ``<eos>`` "padding after
the end", §3.1; see :mod:`nat_plugins.models.sundae`):

1. ``x_0 ~ q(. | x)``: per sequence ``alpha ~ U(0, 1)``, every canvas
   position replaced with probability ``alpha`` by a token drawn uniformly
   from the model's ``noise_symbols``: the whole vocabulary but ``<pad>`` and
   ``<bos>`` (App. A.3, App. J ``get_random_text``; earlier checkpoints: no
   special symbols) (:func:`~nat_plugins.modules.noise.uniform_corruption`);
2. for ``t = 1..k``: logits ``lambda_t = f_theta(. | x_{t-1})``,
   ``L(t) = CE(x, lambda_t)`` and ``x_t ~ lambda_t`` with stop-gradient
   (App. J line 29: ``stop_grad(rand_categorical(logits))``, temperature 1);
3. ``L(1:k) = mean_t L(t)`` (Eq. 3; ``k = 2`` by default, ``--unroll-steps``),
   label-smoothed with epsilon 0.1 (§3.1), plus the length loss weighted by
   ``--length-loss-factor`` (its gradient stops at the encoder, App. B).

The clean canvas of the ``length`` canvas has the model's slack of extra
end positions (``--sundae-canvas-slack``), so predicting the end padding is
trained for every sentence (§3.1).  The gold downsampled length is embedded and prepended to the encoder output
(teacher forcing, App. B / Fig. 3).  Normalisation: every ``L(t)`` is the
mean over canvas positions of the batch (App. J's ``mean(loss_per_token)``),
the length loss the mean over sentences; ``sample_size = 1``.  ``L(1)``,
``L(2)``, ... are logged separately (as ``l1``, ``l2``, ...).
"""
import math
from dataclasses import dataclass, field

import torch
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from ..errors import NATUserError
from ..modules.losses import label_smoothed_nll
from ..modules.noise import uniform_corruption

__all__ = ["SUNDAELoss"]

_MAX_LOGGED_STEPS = 8


@dataclass
class SUNDAELossConfig(FairseqDataclass):
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing epsilon (§3.1: 0.1)"})
    unroll_steps: int = field(
        default=2, metadata={"help": "k of L(1:k): unrolled denoising steps averaged (1 = BERT-like L(1) only)"}
    )


@register_criterion("sundae_loss", dataclass=SUNDAELossConfig)
class SUNDAELoss(FairseqCriterion):
    def __init__(self, task, label_smoothing=0.1, unroll_steps=2):
        super().__init__(task)
        if unroll_steps < 1 or unroll_steps > _MAX_LOGGED_STEPS:
            raise NATUserError(f"--unroll-steps must be between 1 and {_MAX_LOGGED_STEPS}, got {unroll_steps}")
        self.eps = label_smoothing
        self.unroll_steps = unroll_steps

    def forward(self, model, sample, reduce=True, generator=None):
        """Loss of one batch; ``generator`` (tests) makes corruption and samples reproducible."""
        if getattr(model, "decoding_family", None) != "sundae":
            raise NATUserError("--criterion sundae_loss trains only --arch sundae_* models")
        src_tokens = sample["net_input"]["src_tokens"]
        src_lengths = sample["net_input"]["src_lengths"]
        clean, in_canvas, length_d = model.gold_canvas(sample["target"])
        nsentences = clean.size(0)

        encoder_out = model.encode(src_tokens, src_lengths)
        if model.use_length:
            length_loss = model.length_loss(encoder_out, model.source_lengths(src_tokens), length_d) / nsentences
        else:
            length_loss = clean.new_zeros((), dtype=torch.float)

        x, _, _ = uniform_corruption(clean, in_canvas, model.noise_symbols, generator=generator)
        gold = clean[in_canvas]
        n_tok = in_canvas.sum().clamp(min=1)
        step_losses, step_nlls = [], []
        for t in range(self.unroll_steps):
            logits = model.canvas_logits(x, encoder_out, length_d)  # [B, W, V]
            tok_loss, tok_nll = label_smoothed_nll(logits[in_canvas], gold, self.eps)
            step_losses.append(tok_loss.sum() / n_tok)
            step_nlls.append(tok_nll.sum() / n_tok)
            if t + 1 < self.unroll_steps:
                # x_t ~ f(. | x_{t-1}) with stop-gradient (App. J line 29).
                with torch.no_grad():
                    x = model.sample(logits.detach(), 1.0, generator=generator).masked_fill(~in_canvas, model.pad)
        loss, logging_output = self.unrolled_total(model, sample, step_losses, step_nlls, length_loss)
        return loss, 1, logging_output

    @staticmethod
    def unrolled_total(model, sample, step_losses, step_nlls, length_loss):
        """``(loss, logging_output)``: mean of the unrolled steps' losses plus the weighted length loss
        (shared with ``sunmask_loss``)."""
        word_loss = torch.stack(step_losses).mean()
        loss = word_loss + model.length_loss_factor * length_loss
        logging_output = {
            "loss": loss.detach(),
            "nll_loss": torch.stack(step_nlls).mean().detach(),
            "word_loss": word_loss.detach(),
            "length_loss": length_loss.detach(),
            "ntokens": int(model.real_target_mask(sample["target"]).sum()),
            "nsentences": sample["target"].size(0),
            "sample_size": 1,
        }
        for t, value in enumerate(step_losses):
            logging_output[f"l{t + 1}"] = value.detach()
        return loss, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs):
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        keys = ["loss", "nll_loss", "word_loss", "length_loss"]
        keys += [f"l{t}" for t in range(1, _MAX_LOGGED_STEPS + 1) if any(f"l{t}" in log for log in logging_outputs)]
        for key in keys:
            value = sum(float(log.get(key, 0)) for log in logging_outputs)
            metrics.log_scalar(key, value / max(sample_size, 1) / math.log(2), sample_size, round=3)
        metrics.log_derived("ppl", lambda meters: 2 ** meters["nll_loss"].avg if meters["nll_loss"].avg < 100 else float("inf"))

    @staticmethod
    def logging_outputs_can_be_summed():
        return True
