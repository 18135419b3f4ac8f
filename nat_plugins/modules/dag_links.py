"""Transition ("link") probabilities of DA-Transformer's DAG (Huang et al., ICML 2022, §2.1, eq. 1-2).

For vertex states ``h_i`` (the decoder's last-layer features) the transition
log-probability from vertex ``i`` to vertex ``j`` is

    links[b, i, j] = log sum_h gate[b, i, h] * softmax_{j > i}( q_{h,i} . k_{h,j} / sqrt(d) )

* ``q = W_q [h; p]`` and ``k = W_k [h; p]`` where ``p`` is a *learned link-position
  embedding* of the vertex index (the paper concatenates positional information
  to the features before the projections), split into ``H`` heads of
  ``d = C / H`` dims;
* each head is log-softmaxed over the **strictly later** vertices ``j > i`` of the
  sentence's own graph (``j < P_b``); the matrix is strictly upper triangular;
* heads are mixed by a learned gate ``log_softmax(W_g [h; p])`` (a mixture in
  probability space, computed in log space).

Rows without a successor (the last vertex ``P_b - 1`` and padding rows) are all
``-inf``.  Everything is computed in fp32 with a large *finite* negative value
for impossible links, and only the final output is filled with ``-inf``: an
all-``-inf`` ``logsumexp`` would give NaN gradients even where its upstream
gradient is zero.

Simplification: full ``[B, P, P]`` links (no max-transition-length band).
"""
import math

import torch
from torch import nn

__all__ = ["DAGLinks", "valid_link_mask"]

_FINITE_NEG = -1e9


def valid_link_mask(lengths, width):
    """``[B, width, width]`` bool: True where ``i < j < lengths[b]``."""
    ar = torch.arange(width, device=lengths.device)
    upper = ar[:, None] < ar[None, :]
    return upper[None] & (ar[None, None, :] < lengths[:, None, None])


class DAGLinks(nn.Module):
    """Link log-probabilities from vertex features.

    Args:
        embed_dim: feature width ``C``.
        num_heads: link heads ``H`` (``C`` must be divisible by ``H``).
        max_positions: size of the learned link-position table (the largest graph).
    """

    def __init__(self, embed_dim, num_heads, max_positions):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"link heads ({num_heads}) must divide the decoder width ({embed_dim})")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.max_positions = max_positions
        self.link_positions = nn.Embedding(max_positions, embed_dim)
        self.query = nn.Linear(2 * embed_dim, embed_dim)
        self.key = nn.Linear(2 * embed_dim, embed_dim)
        self.gate = nn.Linear(2 * embed_dim, num_heads)
        nn.init.normal_(self.link_positions.weight, mean=0.0, std=embed_dim ** -0.5)
        for lin in (self.query, self.key, self.gate):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, features, lengths):
        """Link log-probs.

        Args:
            features: ``[B, P, C]`` vertex features.
            lengths: ``[B]`` long, vertices per graph ``P_b <= P``.
        Returns:
            ``[B, P, P]`` fp32; ``-inf`` outside ``i < j < P_b``; each row ``i < P_b - 1``
            logsumexps to 0.
        """
        B, P, C = features.shape
        if P > self.max_positions:
            raise ValueError(f"graph of {P} vertices exceeds the {self.max_positions} link positions")
        pos = self.link_positions.weight[:P].unsqueeze(0).expand(B, P, C).to(features.dtype)
        h = torch.cat([features, pos], dim=-1)
        q = self.query(h).view(B, P, self.num_heads, self.head_dim).transpose(1, 2)  # [B, H, P, d]
        k = self.key(h).view(B, P, self.num_heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) / math.sqrt(self.head_dim)  # [B, H, P, P]
        valid = valid_link_mask(lengths, P)  # [B, P, P]
        scores = scores.masked_fill(~valid[:, None], _FINITE_NEG)
        head_lp = scores - torch.logsumexp(scores, dim=-1, keepdim=True)
        gate = torch.log_softmax(self.gate(h).float(), dim=-1).transpose(1, 2).unsqueeze(-1)  # [B, H, P, 1]
        links = torch.logsumexp(head_lp + gate, dim=1)
        return links.masked_fill(~valid, float("-inf"))
