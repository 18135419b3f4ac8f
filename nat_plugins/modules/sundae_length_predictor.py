"""SUNDAE's target-length predictor (Savinov et al. 2022, §3.1 and Appendix B).

A separate network on the source encodings h_x:

1. the encodings are **detached**, so the length loss never changes the
   encoder ("optimisation of the length classification loss does not affect
   the encoder parameters", App. B);
2. projected to ``d_LP = 128`` dims and pooled into one vector ``v_x``;
3. a source-length embedding ``S(l_x)`` is added: ``v'_x = v_x + v_len``;
4. 6 residual blocks;
5. a classifier over the *downsampled* target length ``l_d = ceil(l / 2)``
   (``N_d`` classes, class ``c`` meaning ``l_d = c``).

Simplifications (the paper gives no further detail):

* "project h_x into a vector": a linear projection of every position
  followed by a masked mean over source positions (projection and mean
  commute, so this is the projection of the mean encoding);
* each residual block is ``x + W2 relu(W1 LayerNorm(x))`` at width 128,
  with a final LayerNorm before the classifier;
* source lengths beyond the embedding table share its last row.
"""
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["SundaeLengthPredictor", "downsample_length"]


def downsample_length(length):
    """``l -> ceil(l / 2)`` for a long tensor of lengths (App. B)."""
    return (length + 1) // 2


class ResidualBlock(nn.Module):
    """Pre-norm MLP block: ``x + W2 relu(W1 LN(x))`` ([B, d] -> [B, d])."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, x):
        return x + self.fc2(F.relu(self.fc1(self.norm(x))))


class SundaeLengthPredictor(nn.Module):
    """Predicts ``l_d = ceil(l / 2)`` from detached source encodings.

    Args:
        embed_dim: encoder output size ``d_enc``.
        num_classes: ``N_d + 1`` classes for ``l_d`` in ``0 .. N_d``.
        hidden: ``d_LP`` (128 in the paper).
        num_blocks: residual blocks (6 in the paper).
        max_source_length: rows of the source-length embedding ``S``
            (``N_source``, 128 in the paper).
    """

    def __init__(self, embed_dim, num_classes, hidden=128, num_blocks=6, max_source_length=128):
        super().__init__()
        self.num_classes = num_classes
        self.max_source_length = max_source_length
        self.proj = nn.Linear(embed_dim, hidden)
        self.source_length_embed = nn.Embedding(max_source_length + 1, hidden)
        nn.init.normal_(self.source_length_embed.weight, std=hidden**-0.5)
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(num_blocks))
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, encoder_states, padding_mask, src_len):
        """Length logits.

        Args:
            encoder_states: [S, B, C] encoder output (fairseq's T x B x C).
            padding_mask: [B, S] True at padding, or None.
            src_len: [B] real source lengths ``l_x``.
        Returns:
            [B, num_classes] logits over ``l_d``.
        """
        # Stop-gradient: the length loss must not shape the encoder (App. B).
        x = self.proj(encoder_states.detach().transpose(0, 1))  # [B, S, d]
        if padding_mask is None:
            v = x.mean(1)
        else:
            keep = (~padding_mask).unsqueeze(-1).type_as(x)
            v = (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        v = v + self.source_length_embed(src_len.clamp(0, self.max_source_length))
        for block in self.blocks:
            v = block(v)
        return self.out(self.norm(v))

    def loss(self, logits, length_d):
        """Summed cross-entropy of the gold ``l_d`` [B] (clamped into range)."""
        return F.cross_entropy(logits.float(), length_d.clamp(0, self.num_classes - 1), reduction="sum")

    def top_lengths(self, logits, src_len, k):
        """The ``k`` most probable ``l_d`` classes, best first.

        ``l_d = 0`` is excluded for non-empty sources (an empty translation of
        a real sentence is never a useful candidate); empty sources get 0.

        Returns:
            (length_d [B, k] long, log-probs [B, k])
        """
        logp = F.log_softmax(logits.float(), dim=-1)
        k = max(1, min(k, logp.size(-1) - 1))
        logp = logp.clone()
        logp[:, 0] = float("-inf")
        top_logp, top = logp.topk(k, dim=-1)
        top = top.masked_fill(src_len.eq(0).unsqueeze(-1), 0)
        return top, top_logp
