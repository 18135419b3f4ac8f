"""Conditional Masked Language Model (Ghazvininejad et al. 2019, "Mask-Predict").

Training (``cmlm_loss``): mask a uniform number of target tokens, predict
them from the source and the unmasked rest.  Decoding: the ``mask_predict``
strategy.  The mask symbol is ``<unk>``, as in fairseq's ``cmlm_transformer``,
so checkpoints' vocabularies line up with stock fairseq data.
"""
import torch
from fairseq.models import register_model, register_model_architecture

from ..modules.nat_base import SMALL_SIZE, TINY_SIZE, NATModelBase, nat_base_architecture

__all__ = ["CMLMModel"]


@register_model("cmlm")
class CMLMModel(NATModelBase):
    decoding_family = "cmlm"

    @property
    def mask_idx(self):
        return self.unk

    def initial_canvas(self, lengths):
        """All-mask canvas: lengths [N] -> tokens [N, max(lengths, 1)]."""
        width = max(int(lengths.max()), 1)
        positions = torch.arange(width, device=lengths.device)[None, :]
        tokens = torch.full((lengths.numel(), width), self.mask_idx, dtype=torch.long, device=lengths.device)
        return tokens.masked_fill(positions >= lengths[:, None], self.pad)

    def refine_logprobs(self, tokens, encoder_out):
        """Log-probabilities [N, L, V] (fp32) of every position of canvas ``tokens`` [N, L]."""
        return self.decoder(tokens, encoder_out, normalize=True)


@register_model_architecture("cmlm", "cmlm_base")
def cmlm_base(args):
    """Mask-Predict's base model: 6+6 layers, 512 wide, 8 heads, FFN 2048."""
    nat_base_architecture(args)


@register_model_architecture("cmlm", "cmlm_small")
def cmlm_small(args):
    """CPU-sized: 2+2 layers, 128 wide, 4 heads, FFN 512 (the quickstart size)."""
    nat_base_architecture(args, **SMALL_SIZE)


@register_model_architecture("cmlm", "cmlm_tiny")
def cmlm_tiny(args):
    """For tests: 1+1 layers, 32 wide."""
    nat_base_architecture(args, **TINY_SIZE, length_classes=64)
