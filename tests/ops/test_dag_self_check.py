"""impl="auto" on a GPU: the first-use self-check, its fallback and the override (no GPU needed)."""
import types
import warnings

import pytest
import torch

from nat_plugins import ops
from nat_plugins.ops import cuda_build, self_check
from shim_fixtures import kernels, shim  # noqa: F401  (fixtures)

FAKE_CUDA = types.SimpleNamespace(device=torch.device("cuda", 0))


@pytest.fixture
def gpu_machine(monkeypatch):
    """A pretend GPU machine whose extension 'builds'; returns the self-check call log."""
    monkeypatch.setattr(cuda_build, "_EXT", object())
    monkeypatch.setattr(cuda_build, "_BUILD_ERROR", None)
    monkeypatch.setattr(cuda_build, "_WARNED", set())
    monkeypatch.setattr(cuda_build, "_SELF_CHECK", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv(cuda_build.ENV_IMPL, raising=False)
    calls = []

    def set_result(result):
        def run(device):
            calls.append(device)
            return dict(result)
        monkeypatch.setattr(cuda_build, "_run_self_check", run)

    return calls, set_result


def _resolve_all():
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        got = {op: cuda_build.resolve_impl("auto", FAKE_CUDA, op) for op in self_check.OPS}
        again = {op: cuda_build.resolve_impl("auto", FAKE_CUDA, op) for op in self_check.OPS}
    assert got == again
    return got, [w for w in rec if issubclass(w.category, ops.DagOpsFallbackWarning)]


def test_passing_self_check_uses_the_kernels_and_runs_once(gpu_machine):
    calls, set_result = gpu_machine
    set_result({op: None for op in self_check.OPS})
    got, warned = _resolve_all()
    assert got == {op: "cuda" for op in self_check.OPS} and not warned
    assert calls == [torch.device("cuda", 0)]  # once per process, at the first CUDA call


def test_failing_op_falls_back_alone_with_one_warning_naming_the_reason(gpu_machine):
    calls, set_result = gpu_machine
    set_result({"loss": None, "alignment": None, "viterbi": "joint-Viterbi (transitions) path: [0, 3] vs [0, 2]"})
    got, warned = _resolve_all()
    assert got == {"loss": "cuda", "alignment": "cuda", "viterbi": "torch"}
    assert len(warned) == 1 and "viterbi" in str(warned[0].message) and "[0, 3] vs [0, 2]" in str(warned[0].message)
    assert len(calls) == 1


def test_explicit_cuda_argument_skips_the_self_check(gpu_machine):
    calls, set_result = gpu_machine
    set_result({op: "broken" for op in self_check.OPS})
    assert cuda_build.resolve_impl("cuda", FAKE_CUDA, "loss") == "cuda" and calls == []


@pytest.mark.parametrize("env,expected,checked", [("torch", "torch", False), ("cuda", "cuda", False),
                                                  ("auto", "torch", True)])
def test_environment_override(gpu_machine, monkeypatch, env, expected, checked):
    calls, set_result = gpu_machine
    set_result({op: "broken" for op in self_check.OPS})
    monkeypatch.setenv(cuda_build.ENV_IMPL, env)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cuda_build.resolve_impl("auto", FAKE_CUDA, "alignment") == expected
    assert bool(calls) == checked
    monkeypatch.setenv(cuda_build.ENV_IMPL, "triton")
    with pytest.raises(ValueError, match="NAT_PLUGINS_DAG_IMPL must be"):
        cuda_build.resolve_impl("auto", FAKE_CUDA, "alignment")


def test_env_torch_never_builds(gpu_machine, monkeypatch):
    monkeypatch.setattr(cuda_build, "_EXT", None)
    monkeypatch.setattr(cuda_build, "load_extension", lambda: pytest.fail("must not build"))
    monkeypatch.setenv(cuda_build.ENV_IMPL, "torch")
    assert cuda_build.resolve_impl("auto", FAKE_CUDA, "loss") == "torch"


# --------------------------------------------------------------------------- the check itself, on the shim
def test_check_ops_passes_on_the_real_kernels(kernels):
    assert self_check.check_ops("cpu") == {op: None for op in self_check.OPS}
    # The first CUDA call may come from decoding or an autocast step: the check must not depend on it.
    with torch.no_grad():
        assert self_check.check_ops("cpu") == {op: None for op in self_check.OPS}
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert self_check.check_ops("cpu") == {op: None for op in self_check.OPS}


def test_check_ops_reports_a_wrong_gradient_and_a_crash(kernels):
    impls = self_check._default_impls()

    class WrongGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, y):
            return y.clone()

        @staticmethod
        def backward(ctx, g):
            return g * 1.001  # 1e-3 relative: what fp32 DP state gave at T=256

    loss_cuda, loss_ref = impls["loss"]
    impls["loss"] = (lambda *a: WrongGrad.apply(loss_cuda(*a)), loss_ref)
    impls["alignment"] = (lambda *a: (_ for _ in ()).throw(RuntimeError("kernel launch failed: no image")),
                          impls["alignment"][1])
    result = self_check.check_ops("cpu", impls)
    assert result["viterbi"] is None
    assert result["loss"].startswith("grad match: differs by")
    assert result["alignment"] == "RuntimeError: kernel launch failed: no image"
