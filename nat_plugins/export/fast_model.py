"""A NAT model whose neural passes run exported (:mod:`nat_plugins.export.runtime`).

:func:`exported_model` returns a view of a loaded model of a subclass that
overrides only the passes: ``encode`` (+ ``length_logits``),
``refine_logprobs`` (CMLM) and ``dag_graph`` (DAT, DiffGLAT).  Everything
else (initial canvas, length candidates, graph sizes, decoding options) is the
model's own method; the view's decoder hides ``features`` so that no strategy runs
the eager stack beside the exported pass.  The search is the plugin's own: the shared
:class:`~nat_plugins.decoding.generator.NATGenerator` and its strategies
(mask-predict loop, DAG greedy / lookahead / joint-Viterbi / sampling) run
unchanged on the exported passes' outputs.  So the fast path cannot drift from
``fairseq-generate`` in anything but the floating-point rounding of the
passes, which the tests check does not change any output.
"""
import copy

import torch

from ..errors import NATUserError
from .passes import FAMILIES, EncoderLayout, EncoderPass, decoder_pass, example_inputs
from .runtime import compile_pass, default_backend

__all__ = ["ExportedPasses", "exported_model"]


def _axes(tensor, sizes):
    """``{axis: label}`` for the axes of ``tensor`` whose example size is one of ``sizes`` ({size: label})."""
    return {i: sizes[n] for i, n in enumerate(tensor.shape) if n in sizes}


class ExportedPasses:
    """The encoder pass and the decoder pass of ``model``, traced once for ``backend``.

    Args:
        model: a loaded NAT model in eval mode whose decoding options are
            already applied (DiffGLAT's pass count is traced into its graph).
        backend: ``onnxruntime`` or ``torchscript`` (default: the first installed).
        threads: CPU threads of the runtime (``set_threads`` changes it).
        quantize: None (float32) or ``"int8"`` (ours, ONNX Runtime only; outputs may differ).
    """

    def __init__(self, model, backend=None, threads=1, quantize=None):
        self.backend, self.quantize = backend or default_backend(), quantize
        src, canvas = example_inputs(model)
        with torch.no_grad():
            encoder_out = model.encode(src, None)
            self.layout = EncoderLayout(encoder_out)
            enc_pass = EncoderPass(model, self.layout)
            enc_example = enc_pass(src)
        # Batch 2 and source length 7 (6 words + </s>) mark the dynamic axes of every tensor.
        rows, src_len = src.shape
        enc_sizes = {rows: "batch", src_len: "src_len"}
        enc_names = list(self.layout.tensors) + (["length_logits"] if enc_pass.with_lengths else [])
        enc_axes = {"src_tokens": {0: "batch", 1: "src_len"}}
        enc_axes.update({n: _axes(t, enc_sizes) for n, t in zip(enc_names, enc_example)})
        self.encoder = compile_pass(enc_pass, (src,), ["src_tokens"], enc_names, enc_axes, self.backend, threads,
                                    quantize)

        dec_pass = decoder_pass(model, self.layout)
        dec_example = (canvas,) + self.layout.pack(encoder_out)
        with torch.no_grad():
            dec_out = dec_pass(*dec_example)
        dec_sizes = {rows: "rows", src_len: "src_len", canvas.size(1): "length"}
        first = "tokens" if model.decoding_family == "cmlm" else "canvas"
        dec_in = [first] + list(self.layout.tensors)
        outs = dec_out if isinstance(dec_out, tuple) else (dec_out,)
        dec_names = ["token_logprobs", "links"][:len(outs)]
        dec_axes = {n: _axes(t, dec_sizes) for n, t in zip(dec_in + dec_names, dec_example + outs)}
        self.decoder = compile_pass(dec_pass, dec_example, dec_in, dec_names, dec_axes, self.backend, threads,
                                    quantize)

    def set_threads(self, threads):
        for p in (self.encoder, self.decoder):
            p.set_threads(threads)


class ExportedModelMixin:
    """Overrides of the neural passes (put before the model's class in the MRO)."""

    def train(self, mode=True):
        """Inference only.  ``eval()`` is a no-op: the view was put in eval mode when exported,
        and walking its ~800 submodules on every ``generate`` call costs about 1 ms at batch 1."""
        if mode:
            raise RuntimeError("an exported model view decodes only; train the original model")
        return self

    def encode(self, src_tokens, src_lengths):
        outs = self.exported.encoder(src_tokens)
        n = len(self.exported.layout.tensors)
        encoder_out = self.exported.layout.unpack(outs[:n])
        if len(outs) > n:
            # Read by length_logits right after encoding; reorder_encoder_out drops it.
            encoder_out["length_logits"] = [outs[n]]
        return encoder_out

    def length_logits(self, encoder_out):
        if "length_logits" in encoder_out:
            return encoder_out["length_logits"][0]
        return super().length_logits(encoder_out)

    def refine_logprobs(self, tokens, encoder_out):
        return self.exported.decoder(tokens, *self.exported.layout.pack(encoder_out))[0]

    def dag_graph(self, encoder_out, graph_lengths):
        canvas = self.graph_canvas(graph_lengths)
        token_lp, links = self.exported.decoder(canvas, *self.exported.layout.pack(encoder_out))
        return token_lp, links


class _PassOnlyDecoder:
    """The view's decoder: the model's, without ``features``.  Strategies that would run the
    decoder stack themselves when it has ``features`` (mask-predict's projection of the
    masked positions only, :func:`~nat_plugins.decoding.mask_predict.masked_predictions`)
    then read the model's ``refine_logprobs``: the exported pass."""

    @property
    def features(self):
        raise AttributeError("the decoder stack of an exported view runs only as its exported pass")


def _view(module, mixin):
    """A shallow copy of ``module`` (same parameters and submodules) of a subclass with ``mixin`` first."""
    cls = type(f"Exported{type(module).__name__}", (mixin, type(module)), {"__module__": __name__})
    view = copy.copy(module)
    view.__class__ = cls
    return view


def exported_model(model, backend=None, threads=1, quantize=None):
    """A view of ``model`` (sharing its weights) whose passes run on ``backend``; CPU only.

    Raises:
        NATUserError: the model's family has no exported path (:data:`FAMILIES`).
    """
    family = getattr(model, "decoding_family", None)
    if family not in FAMILIES:
        raise NATUserError(f"the exported fast path supports CMLM, DAT and DiffGLAT models, not {type(model).__name__} "
                           f"(decoding family {family!r}); decode it with fairseq-generate")
    model.eval()
    passes = ExportedPasses(model, backend, threads, quantize)
    fast = _view(model, ExportedModelMixin)
    fast._modules = dict(model._modules)  # the copy shared the dict: give the view its own
    fast._modules["decoder"] = _view(model.decoder, _PassOnlyDecoder)
    fast.exported = passes
    return fast
