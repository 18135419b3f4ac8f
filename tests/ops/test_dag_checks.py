"""Size checks, impl selection and fallback warnings."""
import types
import warnings

import pytest
import torch

from nat_plugins import ops
from nat_plugins.ops import cuda_build, dag_best_alignment, dag_log_likelihood, dag_viterbi


def _inputs(B=3, T=4, P=6):
    return torch.zeros(B, T, P), torch.zeros(B, P, P)


@pytest.mark.parametrize("fn", [dag_log_likelihood, dag_best_alignment])
@pytest.mark.parametrize("P_len,T_len,pattern", [
    ([6, 3, 6], [4, 4, 2], r"sentence 1: graph too small for the target: target_length 4 > output_length 3"),
    ([6, 6, 6], [4, 0, 2], r"sentence 1: target_length 0 < 1"),
    ([6, 6, 7], [4, 4, 2], r"sentence 2: output_length 7 exceeds .* P=6"),
    ([6, 6, 6], [4, 5, 2], r"sentence 1: target_length 5 exceeds .* T=4"),
    ([6, 0, 6], [4, 1, 2], r"sentence 1: output_length 0 < 1"),
])
def test_size_errors(fn, P_len, T_len, pattern):
    match, links = _inputs()
    with pytest.raises(ValueError, match=pattern):
        fn(match, links, torch.tensor(P_len), torch.tensor(T_len), impl="torch")


def test_shape_errors():
    match, links = _inputs()
    with pytest.raises(ValueError, match="links must have shape"):
        dag_log_likelihood(match, links[:, :5], torch.tensor([6] * 3), torch.tensor([2] * 3), impl="torch")
    with pytest.raises(ValueError, match=r"output_length must have shape \[B\]"):
        dag_log_likelihood(match, links, torch.tensor([6] * 2), torch.tensor([2] * 3), impl="torch")
    with pytest.raises(ValueError, match="sentence 0: max_length 0 < 1"):
        dag_viterbi(links, None, torch.tensor([6] * 3), max_length=0, impl="torch")
    with pytest.raises(ValueError, match="token_logprobs must have shape"):
        dag_viterbi(links, torch.zeros(3, 5), torch.tensor([6] * 3), impl="torch")
    with pytest.raises(ValueError, match="impl must be"):
        dag_viterbi(links, None, torch.tensor([6] * 3), impl="triton")


def test_no_path_is_not_an_error():
    match, links = _inputs(T=6)
    out = dag_log_likelihood(match, links, torch.tensor([6, 6, 1]), torch.tensor([1, 6, 1]), impl="torch")
    assert out[0] == float("-inf") and out[1] == 0 and out[2] == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")
def test_no_gpu_behaviour(monkeypatch):
    match, links = _inputs()
    P_len, T_len = torch.tensor([6] * 3), torch.tensor([2] * 3)
    with pytest.raises(RuntimeError, match="impl='cuda' needs a CUDA GPU"):
        dag_log_likelihood(match, links, P_len, T_len, impl="cuda")
    monkeypatch.setattr(cuda_build, "_WARNED", set())
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        dag_log_likelihood(match, links, P_len, T_len)
        dag_best_alignment(match, links, P_len, T_len)
    fallbacks = [w for w in rec if issubclass(w.category, ops.DagOpsFallbackWarning)]
    assert len(fallbacks) == 1 and "no CUDA device" in str(fallbacks[0].message)


def test_build_failure_warns_once_with_compiler_error(monkeypatch):
    log = "ninja: build stopped\n/x/dag_loss.cu(12): error: identifier \"foo\" is undefined\nmore text"

    def failing_load(*a, **k):
        raise RuntimeError("Error building extension 'nat_plugins_dag_ops': " + log)

    monkeypatch.setattr(cuda_build, "_EXT", None)
    monkeypatch.setattr(cuda_build, "_BUILD_ERROR", None)
    monkeypatch.setattr(cuda_build, "_WARNED", set())
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    import torch.utils.cpp_extension as cpp_ext
    monkeypatch.setattr(cpp_ext, "load", failing_load)
    monkeypatch.setattr(cpp_ext, "CUDA_HOME", "/usr/local/cuda")
    fake = types.SimpleNamespace(device=torch.device("cuda", 0))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert cuda_build.resolve_impl("auto", fake) == "torch"
        assert cuda_build.resolve_impl("auto", fake) == "torch"
    assert len(rec) == 1 and 'identifier "foo" is undefined' in str(rec[0].message)
    with pytest.raises(RuntimeError, match="building the nat_plugins CUDA DAG kernels failed"):
        cuda_build.resolve_impl("cuda", fake)
