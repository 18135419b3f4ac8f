"""Running a traced pass outside eager PyTorch: ONNX Runtime (default) or TorchScript.

Why ONNX Runtime, and how it is exported:

* at batch 1 on one thread, 70-78% of an eager decode is Python and dispatcher
  overhead (issue #20); a whole-graph runtime removes it from the passes.  Measured
  2026-12-03 with ``OMP_NUM_THREADS=1 python scripts/benchmarks/benchmark_passes.py --rounds 5
  --sentences 20`` (quickstart-size 2+2x128 models, 8k vocabulary, random weights,
  20-word sources, batch 1, 1 thread, runtimes interleaved) on a shared 2-core AMD
  EPYC VM under heavy load from other jobs (load average 10-24: ratios only, and
  noisy), ms per sentence relative to eager:

  ============ =========== =========== ================
  decoding     TorchScript ONNX Runt.  ONNX Runt. int8
  ============ =========== =========== ================
  CMLM 10x3    1.00x       0.54x       0.39x (12/20 same)
  CMLM 1 pass  0.75x       0.65x       0.49x
  DAT lookah.  0.86x       0.57x       0.48x
  DiffGLAT JV  0.86x       0.71x       0.54x (15/20 same)
  ============ =========== =========== ================

  Every float32 runtime gave eager's hypotheses on all 20 sentences;
* ``torch.onnx.export(dynamo=True)`` (the torch 2.13 default, which would need
  ``onnxscript``) fails on these models: ``torch.export`` refuses the data-dependent
  ``padding_mask.any()`` / ``has_pads`` branches of fairseq's encoder and
  :meth:`NATDecoder.run_layers` (``GuardOnDataDependentSymNode``).  The
  TorchScript-based exporter (``dynamo=False``) traces them (see
  :mod:`nat_plugins.export.passes` for why the traced branch is correct).  It needs
  ``onnx`` (it serialises through it) and ``onnxruntime``, not ``onnxscript``;
  neither depends on torch.

``torchscript`` needs no extra package: it is the fallback when ``onnxruntime`` is
not installed and the backend the tests can always run.

``quantize="int8"`` (ours, off by default): ONNX Runtime's dynamic quantization of
the weight matrices (int8 weights, activations quantized per call), the counterpart
of CTranslate2's int8.  Outputs may then differ from ``fairseq-generate``'s; the
float32 export is the one whose outputs are identical.
"""
import io
import logging
import os
import tempfile
import warnings

import torch

from ..errors import NATUserError

__all__ = ["BACKENDS", "QUANTIZE", "INSTALL_HINT", "available_backends", "compile_pass", "default_backend"]

BACKENDS = ("onnxruntime", "torchscript")
#: ``quantize`` values: None (float32) or "int8" (ONNX Runtime only)
QUANTIZE = (None, "int8")
INSTALL_HINT = ("onnxruntime and onnx are not installed: `make bench` installs them, or "
                "`.venv/bin/pip install 'onnxruntime>=1.17,<2' 'onnx>=1.15,<2'` (neither depends on torch)")
_OPSET = 17


def _have_onnxruntime():
    try:
        import onnx  # noqa: F401  (torch.onnx.export serialises through it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def available_backends():
    return [b for b in BACKENDS if b != "onnxruntime" or _have_onnxruntime()]


def default_backend():
    """``onnxruntime`` when installed, else ``torchscript``."""
    return available_backends()[0]


class _Traced:
    """Shared by the backends: input/output names and the call convention
    ``pass(*tensors) -> tuple of CPU tensors``."""

    def __init__(self, input_names, output_names):
        self.input_names, self.output_names = list(input_names), list(output_names)


class TorchScriptPass(_Traced):
    """``torch.jit.trace`` + ``torch.jit.freeze``; threads are torch's (``torch.set_num_threads``)."""

    def __init__(self, module, example, input_names, output_names):
        super().__init__(input_names, output_names)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings on the asserts and branches discussed above
            traced = torch.jit.trace(module.eval(), example, check_trace=False)
            self.graph = torch.jit.freeze(traced)

    def set_threads(self, threads):
        pass

    def __call__(self, *tensors):
        with torch.no_grad():
            out = self.graph(*tensors)
        return out if isinstance(out, tuple) else (out,)


class OnnxRuntimePass(_Traced):
    """ONNX export (TorchScript-based exporter, dynamic batch and length axes) run by an
    ``onnxruntime.InferenceSession`` on the CPU with ``threads`` intra-op threads."""

    def __init__(self, module, example, input_names, output_names, dynamic_axes, threads=1, quantize=None):
        super().__init__(input_names, output_names)
        buffer = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), example, buffer, dynamo=False, opset_version=_OPSET,
                              input_names=self.input_names, output_names=self.output_names,
                              dynamic_axes=dynamic_axes, do_constant_folding=True)
        self.onnx_bytes = buffer.getvalue()
        if quantize == "int8":
            self.onnx_bytes = _quantize_int8(self.onnx_bytes)
        self.session = None
        self.set_threads(threads)

    def set_threads(self, threads):
        import onnxruntime as ort

        if self.session is not None and self._threads == threads:
            return
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(self.onnx_bytes, options, providers=["CPUExecutionProvider"])
        self._threads = threads
        # The exporter drops inputs the graph never reads (e.g. src_lengths).
        self._feeds = [(i, n) for i, n in enumerate(self.input_names)
                       if n in {x.name for x in self.session.get_inputs()}]

    def __call__(self, *tensors):
        feed = {n: tensors[i].detach().cpu().numpy() for i, n in self._feeds}
        return tuple(torch.from_numpy(x) for x in self.session.run(None, feed))


def _quantize_int8(onnx_bytes):
    """Dynamic int8 quantization of a serialized ONNX graph's weight matrices."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))  # it logs one INFO line per tensor it leaves alone
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "int8.onnx")
            quantize_dynamic(onnx.load_from_string(onnx_bytes), out, weight_type=QuantType.QInt8)
            with open(out, "rb") as handle:
                return handle.read()
    finally:
        root.setLevel(level)


def compile_pass(module, example, input_names, output_names, dynamic_axes, backend, threads=1, quantize=None):
    """Trace ``module`` on ``example`` for ``backend`` (one of :data:`BACKENDS`).

    Args:
        module: an ``nn.Module`` of :mod:`nat_plugins.export.passes`.
        example: tuple of example input tensors (with padding, see there).
        dynamic_axes: ``{name: {axis: label}}`` for the ONNX export.
        quantize: None, or ``"int8"`` (ours; ONNX Runtime only).
    Returns:
        a callable ``(*tensors) -> tuple of tensors`` with ``set_threads(n)``.
    """
    if quantize not in QUANTIZE:
        raise NATUserError(f"unknown quantization {quantize!r} (choose from int8, or none for float32)")
    if backend == "onnxruntime":
        if not _have_onnxruntime():
            raise NATUserError(INSTALL_HINT)
        return OnnxRuntimePass(module, example, input_names, output_names, dynamic_axes, threads, quantize)
    if quantize is not None:
        raise NATUserError(f"--quantize {quantize} needs the onnxruntime backend, not {backend}")
    if backend == "torchscript":
        return TorchScriptPass(module, example, input_names, output_names)
    raise NATUserError(f"unknown export backend {backend!r} (choose from {', '.join(BACKENDS)})")
