"""The exported passes against eager decoding, on tiny in-process models (no training).

Oracle: the shared NATGenerator on the eager model.  The exported view must give the
same hypotheses (tokens, lengths, steps), batched with padding and alone, for every
DAG strategy and for mask-predict with length candidates, on both backends.
"""
import pytest
import torch

from model_builders import build_tiny
from nat_plugins.decoding.generator import NATGenerator
from nat_plugins.decoding.strategy import STRATEGIES, DecodingOptions
from nat_plugins.errors import NATUserError
from nat_plugins.export import runtime
from nat_plugins.export.fast_model import exported_model
from nat_plugins.models.cmlm import CMLMModel, cmlm_tiny
from nat_plugins.models.dat import DATModel, dat_tiny
from nat_plugins.models.diffglat import DiffGLATModel, diffglat_tiny
from nat_plugins.models.sundae import SUNDAEModel, sundae_tiny

WORDS = " ".join(f"w{i}" for i in range(30))
BACKENDS = ["torchscript", pytest.param("onnxruntime", marks=pytest.mark.skipif(
    "onnxruntime" not in runtime.available_backends(), reason="onnxruntime not installed (make bench installs it)"))]


def sources(dictionary, lengths, seed=0):
    """A left-padded batch ``[B, S]`` (fairseq's layout) of random words + ``</s>``."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths) + 1
    src = torch.full((len(lengths), width), dictionary.pad())
    for i, n in enumerate(lengths):
        src[i, width - n - 1:-1] = torch.randint(dictionary.nspecial, len(dictionary), (n,), generator=g)
        src[i, -1] = dictionary.eos()
    return {"net_input": {"src_tokens": src, "src_lengths": torch.tensor(lengths) + 1}}


def decode_both(model, dictionary, strategy, options, fast, batches):
    """Eager and exported decoding of ``batches`` (lists of source lengths) agree."""
    generator = NATGenerator(dictionary, STRATEGIES[strategy](options))
    for lengths in batches:
        sample = sources(dictionary, lengths, seed=sum(lengths))
        eager, exported = generator.generate([model], sample), generator.generate([fast], sample)
        for a, b in zip(eager, exported):
            assert [h["tokens"].tolist() for h in a] == [h["tokens"].tolist() for h in b]
            assert [h["steps"] for h in a] == [h["steps"] for h in b]
            torch.testing.assert_close(torch.stack([h["score"] for h in a]), torch.stack([h["score"] for h in b]),
                                       rtol=1e-4, atol=1e-5)


def prepared(model, options):
    if hasattr(model, "prepare_for_decoding"):
        model.prepare_for_decoding(options)  # before exporting: DiffGLAT traces its pass count
    return model


BATCHES = [[5], [1], [9], [7, 2, 11], [0, 4]]  # alone, one word, long, padded batch, an empty source


@pytest.mark.parametrize("backend", BACKENDS)
def test_mask_predict_with_length_candidates(backend):
    model, _, d = build_tiny(CMLMModel, cmlm_tiny, words=WORDS)
    options = DecodingOptions(iterations=4, length_beam=3)
    decode_both(model, d, "mask_predict", options, exported_model(model, backend), BATCHES)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_dat_strategy(backend):
    model, _, d = build_tiny(DATModel, dat_tiny, words=WORDS, seed=1)
    fast = exported_model(prepared(model, DecodingOptions()), backend)  # one export serves every strategy
    for strategy in ("dag_lookahead", "dag_greedy", "dag_joint_viterbi", "dag_sample_lennorm"):
        options = DecodingOptions(samples=3 if strategy == "dag_sample_lennorm" else 1, seed=7)
        decode_both(model, d, strategy, options, fast, BATCHES)


@pytest.mark.parametrize("backend", BACKENDS)
def test_diffglat_traces_the_decoding_pass_count(backend):
    model, _, d = build_tiny(DiffGLATModel, diffglat_tiny, words=WORDS, seed=2)
    # 2 passes of the stack (not the trained 3): the count is part of the traced graph
    options = DecodingOptions(iterations=2)
    fast = exported_model(prepared(model, options), backend)
    decode_both(model, d, "dag_joint_viterbi", options, fast, BATCHES)
    assert fast.decode_iterations == 2


def test_the_view_shares_weights_and_leaves_the_model_alone():
    model, _, d = build_tiny(DATModel, dat_tiny, words=WORDS)
    fast = exported_model(model, "torchscript")
    assert fast.links is model.links and type(model) is DATModel
    assert isinstance(fast, DATModel) and fast.exported.backend == "torchscript"


@pytest.mark.parametrize("cls, arch, strategy, options", [
    (CMLMModel, cmlm_tiny, "mask_predict", DecodingOptions(iterations=3, length_beam=2)),
    (DATModel, dat_tiny, "dag_lookahead", DecodingOptions()),
])
def test_decoding_runs_the_exported_passes_not_the_eager_stack(cls, arch, strategy, options, monkeypatch):
    model, _, d = build_tiny(cls, arch, words=WORDS)
    fast = exported_model(prepared(model, options), "torchscript")
    calls = {"encoder": 0, "decoder": 0}
    for name in calls:
        traced = getattr(fast.exported, name)

        def counted(*tensors, _traced=traced, _name=name):
            calls[_name] += 1
            return _traced(*tensors)

        monkeypatch.setattr(fast.exported, name, counted)
    for layer in list(model.decoder.layers) + list(model.encoder.layers):
        monkeypatch.setattr(layer, "forward", lambda *a, **k: pytest.fail("an eager layer ran"))
    NATGenerator(d, STRATEGIES[strategy](options)).generate([fast], sources(d, [4, 6]))
    assert calls == {"encoder": 1, "decoder": options.iterations if strategy == "mask_predict" else 1}


def test_unsupported_family_and_backend_are_clear_errors():
    model, _, _ = build_tiny(SUNDAEModel, sundae_tiny, words=WORDS)
    with pytest.raises(NATUserError, match="CMLM, DAT and DiffGLAT"):
        exported_model(model, "torchscript")
    cmlm, _, _ = build_tiny(CMLMModel, cmlm_tiny, words=WORDS)
    with pytest.raises(NATUserError, match="unknown export backend"):
        exported_model(cmlm, "tvm")


@pytest.mark.skipif("onnxruntime" not in runtime.available_backends(), reason="onnxruntime not installed")
def test_int8_export_quantizes_the_weight_matrices_and_decodes():
    model, _, d = build_tiny(DATModel, dat_tiny, words=WORDS, seed=1)
    fast = exported_model(model, "onnxruntime", quantize="int8")
    float32 = exported_model(model, "onnxruntime")
    for name in ("encoder", "decoder"):
        graph = getattr(fast.exported, name).onnx_bytes
        assert b"MatMulInteger" in graph and b"MatMulInteger" not in getattr(float32.exported, name).onnx_bytes
    generator = NATGenerator(d, STRATEGIES["dag_lookahead"](DecodingOptions()))
    for hypos in generator.generate([fast], sources(d, [7, 3])):
        tokens = hypos[0]["tokens"]
        assert tokens[-1] == d.eos() and not any(t in (d.pad(), d.bos()) for t in tokens.tolist())
    with pytest.raises(NATUserError, match="needs the onnxruntime backend"):
        exported_model(model, "torchscript", quantize="int8")


def test_missing_onnxruntime_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(runtime, "_have_onnxruntime", lambda: False)
    assert runtime.default_backend() == "torchscript"
    cmlm, _, _ = build_tiny(CMLMModel, cmlm_tiny, words=WORDS)
    with pytest.raises(NATUserError, match="make bench"):
        exported_model(cmlm, "onnxruntime")
