"""Target-length prediction from the source encoding.

The classic NAT length classifier (Gu et al. 2018; Mask-Predict,
Ghazvininejad et al. 2019 §3.1; fairseq's ``NATransformerDecoder``):
a masked mean over the encoder states, a stop-gradient option, and a linear
layer over ``max_length`` classes that encode either the absolute target
length or its offset from the source length.

Conventions used across the plugin:

* a *length* counts real tokens only (no ``<eos>``/``<bos>``);
* an empty source (only ``<eos>``) always gets target length 0, so
  empty lines translate to empty output instead of hallucinations.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MeanPoolLengthPredictor", "source_lengths"]


def source_lengths(src_tokens, pad, eos):
    """Number of real source tokens. ``src_tokens`` [B, S] -> long [B]."""
    real = src_tokens.ne(pad) & src_tokens.ne(eos)
    return real.sum(1)


class MeanPoolLengthPredictor(nn.Module):
    """Length classifier on the mean-pooled encoder output.

    Args:
        embed_dim: encoder output size C.
        max_length: number of classes K. With ``predict_offset`` the class
            ``K // 2 + (tgt_len - src_len)`` is predicted, else ``tgt_len``.
        predict_offset: predict the length difference to the source.
        stop_gradient: detach the encoder states first, so the length loss
            does not shape the encoder (fairseq's ``--sg-length-pred``).
    """

    def __init__(self, embed_dim, max_length=256, predict_offset=False, stop_gradient=False):
        super().__init__()
        self.max_length = max_length
        self.predict_offset = predict_offset
        self.stop_gradient = stop_gradient
        self.proj = nn.Linear(embed_dim, max_length, bias=False)
        nn.init.normal_(self.proj.weight, mean=0.0, std=embed_dim**-0.5)

    def forward(self, encoder_states, padding_mask):
        """Length logits.

        Args:
            encoder_states: [S, B, C] encoder output (fairseq's T x B x C).
            padding_mask: [B, S] True at padding, or None.
        Returns:
            [B, K] unnormalised logits.
        """
        x = encoder_states.transpose(0, 1)  # [B, S, C]
        if self.stop_gradient:
            x = x.detach()
        if padding_mask is None:
            pooled = x.mean(1)
        else:
            keep = (~padding_mask).unsqueeze(-1).type_as(x)
            pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.proj(pooled)

    # ---- class <-> length -------------------------------------------------
    def length_to_class(self, tgt_len, src_len):
        """[B] target lengths -> [B] class ids (clamped into range)."""
        cls = tgt_len - src_len + self.max_length // 2 if self.predict_offset else tgt_len
        return cls.clamp(0, self.max_length - 1)

    def class_to_length(self, cls, src_len):
        """[B, k] class ids -> [B, k] lengths (>= 0)."""
        if self.predict_offset:
            return (cls - self.max_length // 2 + src_len.unsqueeze(-1)).clamp(min=0)
        return cls

    def loss(self, logits, tgt_len, src_len):
        """Summed NLL of the gold length classes. logits [B, K] -> scalar."""
        target = self.length_to_class(tgt_len, src_len)
        return F.cross_entropy(logits.float(), target, reduction="sum")

    def top_lengths(self, logits, src_len, k, max_len=None):
        """The ``k`` most probable target lengths (Mask-Predict's length beam).

        Unlike fairseq's ``argmax ± k/2`` this ranks by the classifier's own
        probabilities, as Mask-Predict §3.3 describes.

        Args:
            logits: [B, K] length logits.
            src_len: [B] real source lengths; rows with 0 get length 0.
            k: number of candidates.
            max_len: optional upper bound (the decoder's max positions).
        Returns:
            (lengths [B, k] long, log-probs [B, k]); candidates are distinct,
            best first.  Length 0 is excluded for non-empty sources: an
            empty translation of a real sentence is never a useful candidate.
        """
        logp = F.log_softmax(logits.float(), dim=-1)
        k = min(k, logp.size(-1) - 1)
        all_cls = torch.arange(logp.size(-1), device=logp.device).expand_as(logp)
        lengths_all = self.class_to_length(all_cls, src_len)
        bad = lengths_all.eq(0)
        if max_len is not None:
            bad |= lengths_all.gt(max_len)
        logp = logp.masked_fill(bad, float("-inf"))
        top_logp, top_cls = logp.topk(k, dim=-1)
        lengths = self.class_to_length(top_cls, src_len)
        if max_len is not None:
            lengths = lengths.clamp(max=max_len)
        # A row where every class was excluded still needs a usable length.
        lengths = torch.where(torch.isinf(top_logp), torch.ones_like(lengths), lengths)
        empty = src_len.eq(0).unsqueeze(-1)
        lengths = lengths.masked_fill(empty, 0)
        return lengths, top_logp
