"""SUNMASK (Kastner et al. 2022, "SUNMASK: Mask Enhanced Control in Step Unrolled Denoising
Autoencoders") as a translation model: SUNDAE's transition function with an explicit mask input.

The paper models music and unconditional English text; **conditioning on a
source sentence (translation) is our adaptation**.  Everything except the mask
input is SUNDAE's model (:class:`~nat_plugins.models.sundae.SUNDAEModel`,
inherited, not copied): encoder, canvas with ``<eos>`` end padding, the
Appendix-B length predictor, prior and read-out.

The mask (§2, §2.2)
-------------------
``f_theta(x | x', m)`` takes ``m in {0, 1}^W`` with ``1`` = trusted/kept
(the "0-active" format: 0 marks a corrupted position in training, a position
to (re)predict in sampling).  Transformer SUNMASK (§2.2) repeats ``m`` along
the embedding axis (``L`` times), scales it by ``1 / sqrt(L)`` and
concatenates it to the token embedding along that axis.  The paper's
transformer then runs at the doubled width; fairseq's decoder layers have a
fixed width ``d``, so **ours** adds one linear map ``[e; m / sqrt(d) 1_d] -> d``
(:attr:`mask_input`), initialised as the identity on ``e`` so that an
untrained SUNMASK starts as SUNDAE plus a mask signal.  Positional
embeddings are added after it, as for every plugin model.

Which positions the model predicts: the loss covers only corrupted (``m = 0``)
positions (§2, eq. 2), so predictions at ``m = 1`` are never trained; sampling
only takes new values where ``m = 0`` (:mod:`nat_plugins.decoding.sunmask_sampling`),
and the rerank score (:meth:`model_score`) feeds the candidate with ``m = 0``
everywhere.

Training: ``sunmask_loss``.  Decoding: ``sunmask_sample``.
"""
import math

import torch
import torch.nn as nn
from fairseq.models import register_model, register_model_architecture

from ..modules.nat_base import SMALL_SIZE, TINY_SIZE
from .sundae import SUNDAEModel, sundae_architecture

__all__ = ["SUNMASKModel"]


@register_model("sunmask")
class SUNMASKModel(SUNDAEModel):
    decoding_family = "sunmask"

    def __init__(self, args, encoder, decoder, src_dict=None, tgt_dict=None):
        super().__init__(args, encoder, decoder, src_dict, tgt_dict)
        d = self.decoder.embed_dim
        self.mask_input = nn.Linear(2 * d, d)
        with torch.no_grad():
            self.mask_input.weight[:, :d].copy_(torch.eye(d))
            self.mask_input.bias.zero_()

    def masked_embeddings(self, tokens, mask):
        """Decoder input embeddings of canvas ``tokens`` [N, W] with the mask ``mask`` [N, W] (1 = trusted).

        Returns ``[N, W, d]``: ``mask_input([scale * E[tokens]; m / sqrt(d) 1_d])`` (§2.2, module docstring).
        """
        dec = self.decoder
        e = dec.embed_scale * dec.embed_tokens(tokens)
        if dec.project_in_dim is not None:
            e = dec.project_in_dim(e)
        m = (mask.to(e.dtype) / math.sqrt(e.size(-1))).unsqueeze(-1).expand_as(e)
        return self.mask_input(torch.cat([e, m], -1))

    def canvas_logits(self, tokens, encoder_out, length_d=None, mask=None):
        """Logits [N, W, V] of ``f_theta(. | tokens, mask)``; ``mask=None`` trusts nothing (all 0)."""
        if self.use_length:
            if length_d is None:
                raise ValueError("SUNMASK with length prediction needs length_d")
            encoder_out = self.with_length(encoder_out, length_d)
        if mask is None:
            mask = torch.zeros_like(tokens, dtype=torch.bool)
        features = self.decoder.features(tokens, encoder_out, token_embeddings=self.masked_embeddings(tokens, mask))
        return self.decoder.output_layer(features)

    def forward(self, src_tokens, src_lengths, prev_output_tokens, length_d=None, mask=None, **kwargs):
        """Logits [B, W, V] on canvas ``prev_output_tokens`` with ``mask`` (default: all 0)."""
        encoder_out = self.encode(src_tokens, src_lengths)
        if length_d is None and self.use_length:
            length_d = self.width_classes(prev_output_tokens.ne(self.pad).sum(1))
        return self.canvas_logits(prev_output_tokens, encoder_out, length_d, mask)


@register_model_architecture("sunmask", "sunmask_base")
def sunmask_base(args):
    """SUNDAE's base translation model (§3.1 of SUNDAE) with the mask input; the paper's own models are
    music/text-LM sized (its Appendix), not translation models."""
    sundae_architecture(args, dropout=0.1)


@register_model_architecture("sunmask", "sunmask_small")
def sunmask_small(args):
    """CPU-sized, as ``sundae_small``: 2+2 layers, 128 wide; length canvas with 25% slack, at most 40."""
    sundae_architecture(args, sundae_canvas="length", sundae_max_canvas=40, sundae_decode_samples=4, **SMALL_SIZE)


@register_model_architecture("sunmask", "sunmask_tiny")
def sunmask_tiny(args):
    """For tests: 1+1 layers, 32 wide, as ``sundae_tiny``."""
    sundae_architecture(
        args, sundae_canvas="length", sundae_max_canvas=32, sundae_length_hidden=32, sundae_length_blocks=2,
        sundae_decode_samples=4, **TINY_SIZE,
    )
