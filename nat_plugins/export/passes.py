"""The neural passes of NAT decoding as traceable modules (torch only, plus the models' own methods).

Each pass wraps a model method so that tracing it records exactly the
computation eager decoding runs; nothing here re-implements a layer:

* :class:`EncoderPass`: ``src_tokens [B, S] -> encoder tensors`` (fairseq's
  encoder dict flattened, see :class:`EncoderLayout`) and, for models with a
  length predictor, ``length_logits [B, K]``;
* :class:`RefinePass` (CMLM, Mask-Predict §3.2): ``tokens [N, L]`` + encoder
  tensors ``-> log-probs [N, L, V]``: :meth:`CMLMModel.refine_logprobs`;
* :class:`GraphPass` (DA-Transformer §2.1, DiffGLAT §3.3): ``canvas [N, P]`` +
  encoder tensors ``-> (token log-probs [N, P, V], links [N, P, P])``, the body of
  :meth:`DATModel.dag_graph` after the canvas is built (the canvas width is
  data, so it is an input rather than traced as a constant).

Tracing records one branch of every data-dependent ``if`` (fairseq's
``has_pads``, :meth:`NATDecoder.run_layers`' ``padding_mask.any()``).
:func:`example_inputs` therefore traces with padding in both the source and
the canvas, so the masked branch, which is also correct without padding
(an all-False mask changes nothing), is the one recorded.
"""
import torch
from torch import nn

__all__ = ["EncoderLayout", "EncoderPass", "RefinePass", "GraphPass", "decoder_pass", "example_inputs", "FAMILIES"]

#: decoding families with an exported path, and the model method each decoder pass stands for
FAMILIES = {"cmlm": "refine_logprobs", "dat": "dag_graph"}


class EncoderLayout:
    """Which entries of fairseq's encoder-output dict hold one tensor (carried between
    passes, in this order) and which are empty lists.  Read off one eager run."""

    def __init__(self, encoder_out):
        self.tensors = [k for k, v in encoder_out.items() if isinstance(v, list) and len(v) == 1
                        and torch.is_tensor(v[0])]
        self.empty = [k for k, v in encoder_out.items() if isinstance(v, list) and len(v) == 0]

    def pack(self, encoder_out):
        """dict -> tuple of tensors (``self.tensors`` order)."""
        return tuple(encoder_out[k][0] for k in self.tensors)

    def unpack(self, tensors):
        """tuple of tensors -> fairseq encoder-output dict."""
        out = {k: [] for k in self.empty}
        out.update({k: [t] for k, t in zip(self.tensors, tensors)})
        return out


class EncoderPass(nn.Module):
    """``src_tokens [B, S]`` -> encoder tensors (+ ``length_logits [B, K]`` when the model has a predictor)."""

    def __init__(self, model, layout):
        super().__init__()
        self.model, self.layout = model, layout
        self.with_lengths = getattr(model, "length_predictor", None) is not None

    def forward(self, src_tokens):
        encoder_out = self.model.encode(src_tokens, None)
        tensors = self.layout.pack(encoder_out)
        if self.with_lengths:
            tensors = tensors + (self.model.length_logits(encoder_out),)
        return tensors


class RefinePass(nn.Module):
    """CMLM: ``(tokens [N, L], *encoder tensors) -> log-probs [N, L, V]`` (fp32)."""

    def __init__(self, model, layout):
        super().__init__()
        self.model, self.layout = model, layout

    def forward(self, tokens, *encoder_tensors):
        return self.model.refine_logprobs(tokens, self.layout.unpack(encoder_tensors))


class GraphPass(nn.Module):
    """DAT / DiffGLAT: ``(canvas [N, P], *encoder tensors) -> (token log-probs [N, P, V] fp32, links [N, P, P])``."""

    def __init__(self, model, layout):
        super().__init__()
        self.model, self.layout = model, layout

    def forward(self, canvas, *encoder_tensors):
        logits, links = self.model.dag_forward(self.layout.unpack(encoder_tensors), canvas)
        return torch.log_softmax(logits.float(), dim=-1), links


def decoder_pass(model, layout):
    """The decoder pass of ``model``'s decoding family (:data:`FAMILIES`)."""
    return {"cmlm": RefinePass, "dat": GraphPass}[model.decoding_family](model, layout)


def example_inputs(model):
    """Tracing examples with padding: ``(src_tokens [2, S], decoder input [2, L])``.

    Row 1 of the source is left-padded (fairseq's default ``--left-pad-source``)
    and row 1 of the decoder input is shorter than row 0, so both padding
    branches are the traced ones.
    """
    src_dict = model.encoder.dictionary
    first = min(src_dict.nspecial, len(src_dict) - 1)
    words = torch.arange(6) % max(1, len(src_dict) - first) + first
    src = torch.stack([words, words])
    src[1, :2] = src_dict.pad()
    src = torch.cat([src, torch.full((2, 1), src_dict.eos())], 1)
    if model.decoding_family == "cmlm":
        canvas = model.initial_canvas(torch.tensor([5, 3]))
    else:
        canvas = model.graph_canvas(torch.tensor([8, 5]))
    return src, canvas
