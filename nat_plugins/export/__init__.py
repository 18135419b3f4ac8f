"""A fast decoding path: the encoder and decoder passes exported (ONNX Runtime, or
TorchScript when onnxruntime is not installed), the search the plugin's own.

Layering: above ``models`` and ``decoding`` (it wraps a loaded model's passes and
runs the shared generator on them) and beside ``tasks`` (the translator sets a
model up as ``fairseq-generate`` does).  Nothing imports it by default: the
plugin's registration does not need onnxruntime.

* :func:`~nat_plugins.export.fast_model.exported_model`: a model view whose
  passes run exported;
* :class:`~nat_plugins.export.translator.FastTranslator`: checkpoint + data
  directory + generation flags -> translations (API and ``scripts/evaluation/translate_fast.py``).
"""
