"""Mask-Predict decoding (Ghazvininejad et al. 2019, §3.2).

Start from a fully masked canvas; at step ``t`` (0-based) of ``T``:

1. predict every masked position, keeping each prediction's probability;
2. unless it is the last step, re-mask the ``n = floor(N * (T - t - 1) / T)``
   lowest-probability tokens (the linearly decaying schedule).

Unmasked tokens keep the probability they had when last predicted, as in
the paper.

Only the masked positions are projected to the vocabulary, a chunk of rows at a
time, and only their best token and its log-probability are kept
(:func:`~nat_plugins.modules.vocab_projection.best_token_logprobs`): the other
positions' predictions are never used, and no ``[N, L, V]`` log-softmax is built.
Models that expose only full log-probabilities (``refine_logprobs``, e.g. an
exported decoder pass) are read the same way.
"""
import torch

from ..modules.vocab_projection import best_token_logprobs
from .strategy import CanvasState, DecodingStrategy, register_strategy

__all__ = ["MaskPredict", "remask_lowest", "masked_predictions"]


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


def masked_predictions(model, tokens, encoder_out, masked):
    """Best token and its log-probability at the masked positions of a canvas.

    A model whose decoder has ``features`` and ``output_layer`` (the plugin's ``NATDecoder``) is
    read through them, which is what its ``refine_logprobs`` computes, for the masked rows only;
    any other model through its ``refine_logprobs`` (full ``[N, L, V]`` log-probabilities).

    Args:
        tokens: [N, L] canvas; masked: [N, L] bool.
    Returns:
        (scores [M] fp32, tokens [M] long) for the ``M = masked.sum()`` positions, row-major.
    """
    decoder = getattr(model, "decoder", None)
    if decoder is None or not hasattr(decoder, "features"):
        scores, best = model.refine_logprobs(tokens, encoder_out).max(-1)
        return scores[masked], best[masked]
    features = decoder.features(tokens, encoder_out)[masked]
    return best_token_logprobs(features, decoder.output_layer, len(decoder.dictionary))


@register_strategy
class MaskPredict(DecodingStrategy):
    name = "mask_predict"
    families = ("cmlm",)
    #: takes ``--decode-templates`` (decoding/templates.py): fixed tokens are never masked
    accepts_templates = True

    def initialize(self, model, encoder_out, lengths, generator=None, template=None):
        tokens = model.initial_canvas(lengths)
        extra = {"prediction": tokens.clone()}
        if template is not None:
            # Infilling: fixed tokens stand unmasked from the start and count as log-prob 0 in the score.
            tokens, extra["fixed"], _ = template.apply(tokens)
        scores = tokens.new_zeros(tokens.shape, dtype=torch.float)
        return CanvasState(tokens, scores, lengths, extra=extra)

    def step(self, model, encoder_out, state, step, num_steps, generator=None):
        masked = state.tokens.eq(model.mask_idx)
        if "fixed" in state.extra:  # a fixed <unk> (the mask symbol) is a template token, not a mask
            masked &= ~state.extra["fixed"]
        new_scores, new_tokens = masked_predictions(model, state.tokens, encoder_out, masked)
        tokens = state.tokens.masked_scatter(masked, new_tokens)
        scores = state.scores.masked_scatter(masked, new_scores)
        changed = tokens.ne(state.extra["prediction"]).any(1)
        prediction = tokens.clone()
        if step + 1 < num_steps:
            fixed = state.extra.get("fixed")
            free = state.lengths if fixed is None else state.lengths - fixed.sum(1)
            num_mask = (free.float() * (num_steps - step - 1) / num_steps).long()
            rank = scores if fixed is None else scores.masked_fill(fixed, float("inf"))  # never re-masked
            remask = remask_lowest(rank, state.lengths, num_mask)
            if self.options.early_stop:
                # A converged row is about to be frozen by the generator: keep
                # its full prediction instead of a half-masked canvas.
                remask &= changed[:, None]
            tokens = tokens.masked_fill(remask, model.mask_idx)
            scores = scores.masked_fill(remask, 0.0)
        return CanvasState(tokens, scores, state.lengths, changed, {"prediction": prediction})
