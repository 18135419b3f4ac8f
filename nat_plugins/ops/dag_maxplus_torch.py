"""Blocked max-plus products for the PyTorch reference DAG ops.

Best alignment and joint-Viterbi both need, per step,
    out[b, j] = max_i prev[b, i] + L[b, i, j]
which torch has no fused op for: the [B, I, J] sum must be materialised.  Two
things keep this cheap on CPU: only the strictly upper triangle (i < j) and the
reachable band are visited, by cutting the columns into blocks that each see
only the rows above them; and every block writes into one preallocated buffer,
because a fresh multi-MB tensor per step costs page faults that dominate.
Argmaxes are not stored: the backtrace recomputes the single argmax it needs
per step from the stored scores, which is O(P) per sentence and step.
"""
import torch

__all__ = ["MaxPlus"]

# Column-block width: narrower blocks waste less of the triangle but cost more op
# calls; 96 was the fastest of 32..240 at B=32, P=240 on one thread.
_BLOCK = 96


class MaxPlus:
    """Reusable workspace for ``out[:, j] = max_{lo <= i < min(hi, j)} prev[:, i] + L[:, i, j]``.

    ``L`` is kept transposed ([B, j, i]) so the max runs over the contiguous dim
    and the backtrace reads one contiguous row per sentence.
    """

    def __init__(self, L: torch.Tensor):
        self.Lt = L.transpose(1, 2).contiguous()
        B, P, _ = L.shape
        width = min(P, _BLOCK)
        self.buf = L.new_empty(B * P * width)

    def step(self, prev: torch.Tensor, out: torch.Tensor, i_lo: int, i_hi: int, j_lo: int, j_hi: int) -> None:
        """Fill ``out[:, j_lo:j_hi]`` ([B, P] view); columns outside are left untouched."""
        B = prev.shape[0]
        for c0 in range(j_lo, j_hi, _BLOCK):
            c1 = min(j_hi, c0 + _BLOCK)
            i1 = min(i_hi, c1 - 1)  # rows i >= c1 - 1 cannot precede any column of this block
            if i1 <= i_lo:
                out[:, c0:c1] = float("-inf")
                continue
            n = i1 - i_lo
            X = self.buf[: B * n * (c1 - c0)].view(B, c1 - c0, n)
            torch.add(prev[:, None, i_lo:i1], self.Lt[:, c0:c1, i_lo:i1], out=X)
            torch.amax(X, dim=2, out=out[:, c0:c1])

    def argmax_into(self, prev: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """[B] argmax_i prev[b, i] + L[b, i, v[b]]: the predecessor of v on a best path."""
        b = torch.arange(prev.shape[0], device=prev.device)
        return (prev + self.Lt[b, v]).argmax(dim=1)
