"""DA-Transformer training loss with glancing (Huang et al., ICML 2022, §2.2-2.3).

Per sentence: ``-log P(Y | X) / |Y|`` where ``log P(Y | X)`` sums over all
paths of ``|Y|`` vertices through the model's DAG
(:func:`nat_plugins.ops.dag_log_likelihood`: forward-backward with a hand-written
backward, CUDA kernels on GPU); the batch loss is the mean over sentences
(``sample_size = 1``, like ``cmlm_loss``).

Glancing (training only, ratio ``p`` from ``--glance-p``, e.g. ``0.5:0.1@200k``):

1. a no-grad first decoder pass on the position-only graph;
2. best alignment of the target (:func:`nat_plugins.ops.dag_best_alignment`);
3. ``round((|Y| - same) * p)`` random aligned vertices
   (:class:`~nat_plugins.modules.glancing.GlancingSampler`) get their aligned
   target token as decoder input;
4. *forcing*: a glanced vertex ``j`` fed ``y_t`` may only emit ``y_t`` in the
   second pass's loss: ``match[b, t', j] = -inf`` for every ``t'`` with
   ``y_t' != y_t`` (its ``log P(y_t | v_j)`` entries are kept, so the loss still
   teaches it to emit the token).  Paths through ``j`` that would read another
   token from it are removed;
5. the second pass reuses the first pass's dropout masks: the first pass runs
   inside ``torch.random.fork_rng`` so the RNG is restored before the second.

The encoder runs once, with gradient; both decoder passes read its output.

Logs, as the DA-Transformer reference does: ``glat_acc``, the share of aligned vertices whose
hint-free first-pass argmax is their aligned target token (the ``same / T`` of step 1), and
``glanced_per_sent``, glanced vertices per sentence (``glanced_frac`` gives them per target token).

Neither pass materialises a ``[B, P, V]`` log-softmax: the glancing pass reads only the
targets' log-probabilities and the argmax, the gradient pass uses a fused log-softmax + gather
(:mod:`nat_plugins.modules.vocab_projection`); the results equal the unfused computation's.

The schedule follows the update number, which fairseq passes to the model
(``set_num_updates``, every step and on checkpoint load) and to this criterion
(:meth:`DAGLoss.set_num_updates`), so it survives resuming.

Size problems never reach a kernel: sentences with an empty target or a graph
smaller than the target (``|Y| > P_b``, "graph too small") are **skipped and
counted** (``skipped`` in the logs) in the criterion; filtering at data loading
is not possible when ``--upsample-scale A~B`` samples the graph size per batch.
Sentences whose likelihood is not finite (e.g. no path of finite probability)
contribute 0 and are counted (``nonfinite``).
"""
import math
from dataclasses import dataclass, field

import torch
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from ..errors import NATUserError
from ..modules.glancing import GlanceSchedule, GlancingSampler
from ..modules.vocab_projection import glancing_scores, target_logprobs
from ..ops import dag_best_alignment, dag_log_likelihood

__all__ = ["DAGLoss", "target_match", "force_glanced", "mean_finite_nll"]


@dataclass
class DAGLossConfig(FairseqDataclass):
    glance_p: str = field(
        default="0.5:0.1@200k",
        metadata={"help": "glancing ratio: P, or START:END@UPDATES annealed linearly (0 disables glancing)"},
    )


def target_match(token_logits, target):
    """``match [B, T, P]`` fp32: ``log P(y_t | v_j)`` from ``token_logits [B, P, V]`` and ``target [B, T]``.

    A fused log-softmax + gather (:func:`~nat_plugins.modules.vocab_projection.target_logprobs`):
    no ``[B, P, V]`` log-probabilities are materialised or kept for backward.
    """
    return target_logprobs(token_logits, target)


def mean_finite_nll(match, links, graph_len, tgt_len):
    """``(loss, n_finite)``: the mean over sentences of ``-log P(Y | X) / |Y|``; sentences whose
    likelihood is not finite contribute 0 and are not counted.

    Args:
        match: ``[B, T, P]``; links: ``[B, P, P]``; graph_len, tgt_len: ``[B]`` (valid sizes only).
    """
    ll = dag_log_likelihood(match, links, graph_len, tgt_len)
    per_sentence = -ll / tgt_len.to(ll)
    finite = torch.isfinite(per_sentence)
    n_finite = int(finite.sum())
    return torch.where(finite, per_sentence, torch.zeros_like(per_sentence)).sum() / max(n_finite, 1), n_finite


def force_glanced(match, target, alignment, glanced):
    """Glanced vertices may only emit the token they were fed.

    Args:
        match: ``[B, T, P]``; target: ``[B, T]``; alignment: ``[B, P]`` (``-1`` = none);
        glanced: ``[B, P]`` bool.
    Returns:
        ``match`` with ``-inf`` at ``(t', j)`` for glanced ``j`` and ``y_t' != y_{alignment[j]}``.
    """
    fed = target.gather(1, alignment.clamp(min=0))  # [B, P]
    other = target[:, :, None].ne(fed[:, None, :])  # [B, T, P]
    return match.masked_fill(other & glanced[:, None, :], float("-inf"))


@register_criterion("dag_loss", dataclass=DAGLossConfig)
class DAGLoss(FairseqCriterion):
    def __init__(self, task, glance_p="0.5:0.1@200k"):
        super().__init__(task)
        try:
            self.schedule = GlanceSchedule(glance_p)
        except ValueError as exc:
            raise NATUserError(f"--glance-p: {exc}") from exc
        self.sampler = GlancingSampler()
        self.num_updates = 0

    def set_num_updates(self, num_updates):
        self.num_updates = int(num_updates)

    def glance_ratio(self, model):
        updates = getattr(model, "num_updates", None)
        if updates is not None:
            self.num_updates = int(updates)
        return self.schedule(self.num_updates)

    def forward(self, model, sample, reduce=True):
        src_tokens = sample["net_input"]["src_tokens"]
        src_lengths = sample["net_input"]["src_lengths"]
        target, tgt_len, _ = model.dag_target(sample["target"])  # y, or <s> y </s> (--dag-frame-target)

        encoder_out = model.encode(src_tokens, src_lengths)
        graph_len = model.graph_lengths(src_tokens, model.upsample_scale())
        ok = tgt_len.ge(1) & tgt_len.le(graph_len)
        rows = ok.nonzero().squeeze(1)
        canvas = model.graph_canvas(graph_len)
        nsentences = target.size(0)
        # Index rows only when some are skipped: copying [B, P, V] logits is not free.
        pick = (lambda x: x) if rows.numel() == nsentences else (lambda x: x[rows])

        ratio = self.glance_ratio(model) if model.training else 0.0
        glanced = torch.zeros_like(canvas, dtype=torch.bool)
        alignment = None
        first_pass = (0, 0)  # (aligned vertices whose hint-free argmax is their token, aligned vertices)
        if ratio > 0 and rows.numel() > 0:
            devices = [canvas.device.index or 0] if canvas.device.type == "cuda" else []
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                logits, links = model.dag_forward(encoder_out, canvas)
                # Only the targets' log-probabilities and the argmax: no [B, P, V] log-softmax.
                match, best = glancing_scores(pick(logits), pick(target))
                del logits
                alignment = canvas.new_full(canvas.shape, -1)
                alignment[rows] = dag_best_alignment(match, pick(links), pick(graph_len), pick(tgt_len))
                aligned_tok = target.gather(1, alignment.clamp(min=0))
                correct = torch.zeros_like(glanced)
                correct[rows] = best.eq(pick(aligned_tok))
                glanced = self.sampler.select(alignment, correct, ratio)
                first_pass = (int((alignment.ge(0) & correct).sum()), int(alignment.ge(0).sum()))
                del links, match
            canvas = self.sampler.glance_inputs(canvas, target, alignment, glanced)

        logits, links = model.dag_forward(encoder_out, canvas)
        if rows.numel() > 0:
            match = target_match(pick(logits), pick(target))
            if alignment is not None:
                match = force_glanced(match, pick(target), pick(alignment), pick(glanced))
            loss, n_finite = mean_finite_nll(match, pick(links), pick(graph_len), pick(tgt_len))
        else:
            n_finite = 0
            # Keep the graph connected so backward() works; the gradient is zero.
            loss = logits.float().sum() * 0.0
        n_ok = int(rows.numel())
        logging_output = {
            "loss": loss.detach(),
            "nll_loss": loss.detach(),
            "ntokens": int(tgt_len[rows].sum()) if n_ok else 0,
            "nsentences": nsentences,
            "sample_size": 1,
            "skipped": nsentences - n_ok,
            "nonfinite": n_ok - n_finite,
            "glance_p": ratio,
            "glanced": int(glanced.sum()),
            "glance_of": int(tgt_len[rows].sum()) if (n_ok and ratio > 0) else 0,
            "glat_correct": first_pass[0],
            "glat_aligned": first_pass[1],
            "glanced_sentences": n_ok if alignment is not None else 0,
            "graph_vertices": int(graph_len.sum()),
            "target_tokens": int(tgt_len.sum()),
        }
        return loss, 1, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs):
        def total(key):
            return sum(float(log.get(key, 0)) for log in logging_outputs)

        sample_size = total("sample_size")
        if sample_size > 0:
            for key in ("loss", "nll_loss"):
                metrics.log_scalar(key, total(key) / sample_size / math.log(2), sample_size, round=3)
            metrics.log_scalar("glance_p", total("glance_p") / len(logging_outputs), 1, round=3)
        metrics.log_derived("ppl", lambda meters: 2 ** meters["nll_loss"].avg if meters["nll_loss"].avg < 100 else float("inf"))
        metrics.log_scalar_sum("skipped", total("skipped"))
        metrics.log_scalar_sum("nonfinite", total("nonfinite"))
        if total("glance_of") > 0:
            metrics.log_scalar("glanced_frac", total("glanced") / total("glance_of"), total("glance_of"), round=3)
        if total("glat_aligned") > 0:
            # DA-Transformer's glat_acc: hint-free first-pass accuracy on the aligned vertices.
            metrics.log_scalar("glat_acc", total("glat_correct") / total("glat_aligned"), total("glat_aligned"), round=3)
        if total("glanced_sentences") > 0:
            metrics.log_scalar("glanced_per_sent", total("glanced") / total("glanced_sentences"),
                               total("glanced_sentences"), round=2)
        if total("target_tokens") > 0:
            metrics.log_scalar("graph_ratio", total("graph_vertices") / total("target_tokens"), 1, round=2)

    @staticmethod
    def logging_outputs_can_be_summed():
        # glance_p is averaged over logging outputs, so they must stay separate.
        return False
