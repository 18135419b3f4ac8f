"""Shared pieces of the CPU-shim kernel tests (tests/cuda_shim, test_dag_cuda_shim.py)."""
import os
import sys

import pytest
import torch

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(_ROOT, "tests", "cuda_shim"))

import shim_ext  # noqa: E402


@pytest.fixture(scope="session")
def shim():
    """The kernels compiled for the CPU (built once, cached by content hash)."""
    if not shim_ext.compiler_available():
        pytest.skip(f"CPU-shim kernel tests need a C++ compiler ({shim_ext.CXX}); none on PATH")
    return shim_ext.build()


@pytest.fixture
def kernels(shim, monkeypatch):
    """nat_plugins.ops.dag_cuda running on CPU tensors through the shim."""
    from nat_plugins.ops import dag_cuda

    monkeypatch.setattr(dag_cuda, "load_extension", lambda: shim)
    return dag_cuda


def parity_batch(dtype=torch.float32, seed=0, B=8, T=30, P=240, P_len=None, T_len=None):
    """Normalised random DAG batch; by default the GPU parity test's batch."""
    g = torch.Generator().manual_seed(seed)
    if P_len is None:
        P_len = [240, 200, 240, 120, 64, 30, 240, 90]
        # T_b = P_b (sentence 5), T_b = 1 with no path (6), T_b = 2 (7), mixed lengths.
        T_len = [30, 25, 30, 30, 8, 30, 1, 2]
    P_len, T_len = torch.tensor(P_len), torch.tensor(T_len)
    match = torch.randn(B, T, P, generator=g).log_softmax(-1)
    upper = torch.ones(P, P, dtype=torch.bool).triu(1)
    links = torch.randn(B, P, P, generator=g).masked_fill(~upper, float("-inf")).log_softmax(-1)
    links = links.masked_fill(~upper, float("-inf"))
    links[:, P - 1] = float("-inf")  # the last row has no successor; log_softmax gave NaN
    return match.to(dtype), links.to(dtype), P_len, T_len
