"""SUNMASK's masked, difficulty-weighted, step-unrolled loss (Kastner et al. 2022, §2 eq. 2, §2.2).

Conditioning on a source sentence is our adaptation (see :mod:`nat_plugins.models.sunmask`).
For the clean target canvas ``x`` of SUNDAE (real tokens, then ``<eos>`` end padding):

1. per example a noise level ``u ~ U(0, 1)``; each canvas position is corrupted when
   ``rand < u`` (§2.2: ``rand(N) < rand(N, T)`` read as "corrupt with probability u";
   SUNDAE's corruption, :func:`~nat_plugins.modules.noise.uniform_corruption`, reused).
   The mask is ``m = 1`` where kept, ``0`` where corrupted; ``x_0`` holds uniform
   random tokens at the corrupted positions;
2. ``t = 1, 2`` (``--unroll-steps``, §2: "in practice ... t = 2") with **the same mask**:
   logits ``f_theta(. | x_{t-1}, m)``; ``x_t`` is a temperature-1 sample of every canvas
   position, with stop-gradient (Fig. 1: "a sampled version of the model step
   predictions and the same mask");
3. per example and step, the negative log-likelihood of ``x`` at the **corrupted
   positions only**, times ``1 / (1 + K)`` with ``K = sum(1 - m)`` the example's number of
   corrupted positions (§2.2's curriculum weight).  Eq. 2 writes ``1 / K``; the text's
   ``1 / (1 + K)`` is the same up to the ``+1`` that keeps ``K = 0`` finite, and is what we use;
4. ``L = mean_t mean_examples(...)`` (eq. 2's ``1/2 (L(1) + L(2))``, the expectation as a batch
   mean), plus SUNDAE's length loss (App. B of SUNDAE) times ``--length-loss-factor``.

``--label-smoothing`` defaults to 0: the paper's eq. 2 is the plain log-likelihood.
Logged: ``loss``, ``nll_loss``, ``l1``/``l2`` per step, ``length_loss``, ``masked_share``
(mean ``K / W``).
"""
from dataclasses import dataclass, field

import torch
from fairseq import metrics
from fairseq.criterions import register_criterion
from fairseq.dataclass import FairseqDataclass

from ..errors import NATUserError
from ..modules.losses import label_smoothed_nll
from ..modules.noise import uniform_corruption
from .sundae_loss import SUNDAELoss

__all__ = ["SUNMASKLoss", "masked_example_loss"]


@dataclass
class SUNMASKLossConfig(FairseqDataclass):
    label_smoothing: float = field(default=0.0, metadata={"help": "label smoothing epsilon (eq. 2: none)"})
    unroll_steps: int = field(default=2, metadata={"help": "unrolled steps t, all with the same mask (§2: 2)"})


def masked_example_loss(logits, gold, corrupted, epsilon=0.0):
    """Per-example ``sum_{i: m_i = 0} -log f_i(x_i) / (1 + K)`` (§2.2).

    Args:
        logits: ``[B, W, V]``; gold: ``[B, W]`` clean canvas; corrupted: ``[B, W]`` bool (``m = 0``).
    Returns:
        ``(loss [B], nll [B])``, label-smoothed and plain.
    """
    B, W, V = logits.shape
    tok_loss, tok_nll = label_smoothed_nll(logits.reshape(-1, V), gold.reshape(-1), epsilon)
    weight = corrupted.float() / (1.0 + corrupted.sum(1, keepdim=True).float())
    return (tok_loss.view(B, W) * weight).sum(1), (tok_nll.view(B, W) * weight).sum(1)


@register_criterion("sunmask_loss", dataclass=SUNMASKLossConfig)
class SUNMASKLoss(SUNDAELoss):
    def __init__(self, task, label_smoothing=0.0, unroll_steps=2):
        super().__init__(task, label_smoothing=label_smoothing, unroll_steps=unroll_steps)

    def forward(self, model, sample, reduce=True, generator=None):
        """Loss of one batch; ``generator`` (tests) makes the mask, noise and samples reproducible."""
        if getattr(model, "decoding_family", None) != "sunmask":
            raise NATUserError("--criterion sunmask_loss trains only --arch sunmask_* models")
        src_tokens = sample["net_input"]["src_tokens"]
        clean, in_canvas, length_d = model.gold_canvas(sample["target"])
        B = clean.size(0)
        encoder_out = model.encode(src_tokens, sample["net_input"]["src_lengths"])
        if model.use_length:
            length_loss = model.length_loss(encoder_out, model.source_lengths(src_tokens), length_d) / B
        else:
            length_loss = clean.new_zeros((), dtype=torch.float)

        x, corrupted, _ = uniform_corruption(clean, in_canvas, model.noise_symbols, generator=generator)
        mask = in_canvas & ~corrupted  # 1 = kept/trusted, the same at every unrolled step
        step_losses, step_nlls = [], []
        for t in range(self.unroll_steps):
            logits = model.canvas_logits(x, encoder_out, length_d, mask)
            loss_b, nll_b = masked_example_loss(logits, clean, corrupted, self.eps)
            step_losses.append(loss_b.mean())
            step_nlls.append(nll_b.mean())
            if t + 1 < self.unroll_steps:
                with torch.no_grad():
                    x = model.sample(logits.detach(), 1.0, generator=generator).masked_fill(~in_canvas, model.pad)
        loss, logging_output = self.unrolled_total(model, sample, step_losses, step_nlls, length_loss)
        share = corrupted.sum(1).float() / in_canvas.sum(1).clamp(min=1).float()
        logging_output["masked_share"] = share.mean().detach()
        return loss, 1, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs):
        SUNDAELoss.reduce_metrics(logging_outputs)
        n = sum(log.get("sample_size", 0) for log in logging_outputs)
        share = sum(float(log.get("masked_share", 0)) for log in logging_outputs)
        metrics.log_scalar("masked_share", share / max(n, 1), n, round=3)
