"""CUDA kernels vs the PyTorch reference at realistic sizes (GPU only).

Run on a CUDA machine (torch with CUDA + nvcc; fairseq not needed):
    python -m pytest tests/ops -q
The first test builds the extension (~1-2 min) into $NAT_PLUGINS_CACHE.  The
same kernels run on the CPU in CI through tests/cuda_shim (test_dag_cuda_shim.py).
"""
import pytest
import torch

from nat_plugins.ops import dag_best_alignment, dag_log_likelihood, dag_viterbi
from shim_fixtures import parity_batch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

B, T, P = 8, 30, 240
RTOL = 1e-4


def _batch(dtype=torch.float32, seed=0, **sizes):
    """The parity batch of the CPU-shim tests (tests/ops/shim_fixtures.py), on the GPU."""
    match, links, P_len, T_len = parity_batch(dtype, seed, **sizes)
    return match.cuda(), links.cuda(), P_len.cuda(), T_len.cuda()


def _close(a, b, rtol=RTOL, atol=1e-6):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol, equal_nan=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_likelihood_forward_backward_parity(dtype):
    match, links, P_len, T_len = _batch(dtype)
    outs = {}
    for impl in ("torch", "cuda"):
        m = match.clone().requires_grad_()
        l = links.clone().requires_grad_()
        y = dag_log_likelihood(m, l, P_len, T_len, impl=impl)
        w = torch.linspace(0.5, 1.5, B, device=y.device, dtype=y.dtype)
        (y.nan_to_num(neginf=0.0) * w).sum().backward()
        outs[impl] = (y.detach(), m.grad, l.grad)
    for ref, got in zip(outs["torch"], outs["cuda"]):
        assert got.dtype == dtype
        _close(got, ref)
    assert outs["cuda"][0][6] == float("-inf")  # T_b = 1 < P_b


def test_likelihood_at_T256_P1024_fp32():
    # fp32 DP state gave ~1e-3 relative gradient errors at these sizes; fp64 state: 1e-4 holds.
    match, links, P_len, T_len = _batch(B=2, T=256, P=1024, P_len=[1024, 1000], T_len=[256, 200])
    outs = {}
    for impl in ("torch", "cuda"):
        m = match.clone().requires_grad_()
        l = links.clone().requires_grad_()
        y = dag_log_likelihood(m, l, P_len, T_len, impl=impl)
        y.sum().backward()
        outs[impl] = (y.detach(), m.grad, l.grad)
    for ref, got in zip(outs["torch"], outs["cuda"]):
        _close(got, ref)


def test_likelihood_half_inputs_and_current_stream():
    match, links, P_len, T_len = _batch(torch.float16)
    ref = dag_log_likelihood(match.float(), links.float(), P_len, T_len, impl="cuda")
    stream = torch.cuda.Stream()
    # The inputs were made on the default stream: the side stream must wait for them.
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        m = match.clone().requires_grad_()
        y = dag_log_likelihood(m, links, P_len, T_len, impl="cuda")
        y.nan_to_num(neginf=0.0).sum().backward()
    torch.cuda.current_stream().wait_stream(stream)
    assert y.dtype == torch.float16 and m.grad.dtype == torch.float16
    _close(y.float(), ref, rtol=2e-3, atol=2e-3)


def test_best_alignment_parity():
    match, links, P_len, T_len = _batch()
    ref = dag_best_alignment(match, links, P_len, T_len, impl="torch")
    got = dag_best_alignment(match, links, P_len, T_len, impl="cuda")
    assert torch.equal(got, ref)


@pytest.mark.parametrize("beta,max_length,with_tok,norm", [
    (1.0, None, True, "transitions"), (1.0, None, True, "vertices"), (0.0, None, False, "vertices"),
    (2.5, 40, True, "transitions")])
def test_joint_viterbi_parity(beta, max_length, with_tok, norm):
    _, links, P_len, _ = _batch()
    tok = torch.randn(B, P, device=links.device).log_softmax(-1) if with_tok else None
    rv, rl, rs = dag_viterbi(links, tok, P_len, beta=beta, max_length=max_length, impl="torch", length_norm=norm)
    gv, gl, gs = dag_viterbi(links, tok, P_len, beta=beta, max_length=max_length, impl="cuda", length_norm=norm)
    assert torch.equal(gl, rl) and torch.equal(gv, rv)
    _close(gs, rs)


def test_fp16_links_with_fp32_token_scores_and_nan():
    _, links, P_len, _ = _batch(torch.float16)
    tok = torch.randn(B, P, device=links.device).log_softmax(-1) * 1.0001  # not representable in fp16
    tok[3, 5] = float("nan")
    ref = dag_viterbi(links, tok, P_len, impl="torch", length_norm="transitions")
    got = dag_viterbi(links, tok, P_len, impl="cuda", length_norm="transitions")
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
    torch.testing.assert_close(got[2], ref[2], equal_nan=True)


def test_self_check_passes_on_this_gpu():
    from nat_plugins.ops.self_check import check_ops

    assert check_ops(torch.device("cuda")) == {"loss": None, "alignment": None, "viterbi": None}


def test_cuda_inputs_unmodified():
    match, links, P_len, T_len = _batch()
    m0, l0 = match.clone(), links.clone()
    dag_log_likelihood(match.requires_grad_(), links, P_len, T_len, impl="cuda").sum().backward()
    dag_best_alignment(match.detach(), links, P_len, T_len, impl="cuda")
    dag_viterbi(links, None, P_len, impl="cuda")
    assert torch.equal(match.detach(), m0) and torch.equal(links, l0)
