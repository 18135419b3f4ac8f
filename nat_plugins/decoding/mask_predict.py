"""Mask-Predict decoding (Ghazvininejad et al. 2019, §3.2).

Start from a fully masked canvas; at step ``t`` (0-based) of ``T``:

1. predict every masked position, keeping each prediction's probability;
2. unless it is the last step, re-mask the ``n = floor(N * (T - t - 1) / T)``
   lowest-probability tokens (the linearly decaying schedule).

Unmasked tokens keep the probability they had when last predicted, as in
the paper.
"""
import torch

from .strategy import CanvasState, DecodingStrategy, register_strategy

__all__ = ["MaskPredict", "remask_lowest"]


def remask_lowest(scores, lengths, num_mask):
    """Boolean mask of the ``num_mask`` lowest-scoring real positions.

    Args:
        scores: [N, L] confidences; positions ``>= lengths`` are ignored.
        lengths: [N] candidate lengths.
        num_mask: [N] how many positions to select per row.
    Returns:
        [N, L] bool.
    """
    positions = torch.arange(scores.size(1), device=scores.device)[None, :]
    real = positions < lengths[:, None]
    ranked = scores.masked_fill(~real, float("inf")).argsort(1)
    rank_of = torch.empty_like(ranked).scatter_(1, ranked, positions.expand_as(ranked))
    return (rank_of < num_mask[:, None]) & real


@register_strategy
class MaskPredict(DecodingStrategy):
    name = "mask_predict"
    families = ("cmlm",)

    def initialize(self, model, encoder_out, lengths, generator=None):
        tokens = model.initial_canvas(lengths)
        scores = tokens.new_zeros(tokens.shape, dtype=torch.float)
        return CanvasState(tokens, scores, lengths, extra={"prediction": tokens.clone()})

    def step(self, model, encoder_out, state, step, num_steps, generator=None):
        masked = state.tokens.eq(model.mask_idx)
        lprobs = model.refine_logprobs(state.tokens, encoder_out)  # [N, L, V]
        new_scores, new_tokens = lprobs.max(-1)
        tokens = torch.where(masked, new_tokens, state.tokens)
        scores = torch.where(masked, new_scores, state.scores)
        changed = tokens.ne(state.extra["prediction"]).any(1)
        prediction = tokens.clone()
        if step + 1 < num_steps:
            num_mask = (state.lengths.float() * (num_steps - step - 1) / num_steps).long()
            remask = remask_lowest(scores, state.lengths, num_mask)
            if self.options.early_stop:
                # A converged row is about to be frozen by the generator: keep
                # its full prediction instead of a half-masked canvas.
                remask &= changed[:, None]
            tokens = tokens.masked_fill(remask, model.mask_idx)
            scores = scores.masked_fill(remask, 0.0)
        return CanvasState(tokens, scores, state.lengths, changed, {"prediction": prediction})
