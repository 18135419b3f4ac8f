"""CUDA kernels vs the PyTorch reference at realistic sizes (GPU only).

Run on a CUDA machine (torch with CUDA + nvcc; fairseq not needed):
    python -m pytest tests/ops -q
The first test builds the extension (~1-2 min) into $NAT_PLUGINS_CACHE.
"""
import pytest
import torch

from nat_plugins.ops import dag_best_alignment, dag_log_likelihood, dag_viterbi

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

B, T, P = 8, 30, 240
RTOL = 1e-4


def _batch(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    P_len = torch.tensor([240, 200, 240, 120, 64, 30, 240, 90])
    # T_b = P_b (sentence 5), T_b = 1 with no path (6), T_b = 2 (7), mixed lengths.
    T_len = torch.tensor([30, 25, 30, 30, 8, 30, 1, 2])
    match = torch.randn(B, T, P, generator=g).log_softmax(-1)
    upper = torch.ones(P, P, dtype=torch.bool).triu(1)
    links = torch.randn(B, P, P, generator=g).masked_fill(~upper, float("-inf")).log_softmax(-1)
    links = links.masked_fill(~upper, float("-inf"))
    links[:, P - 1] = float("-inf")  # the last row has no successor; log_softmax gave NaN
    return match.cuda().to(dtype), links.cuda().to(dtype), P_len.cuda(), T_len.cuda()


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


def test_likelihood_half_inputs_and_current_stream():
    match, links, P_len, T_len = _batch(torch.float16)
    ref = dag_log_likelihood(match.float(), links.float(), P_len, T_len, impl="cuda")
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        m = match.clone().requires_grad_()
        y = dag_log_likelihood(m, links, P_len, T_len, impl="cuda")
        y.nan_to_num(neginf=0.0).sum().backward()
    stream.synchronize()
    assert y.dtype == torch.float16 and m.grad.dtype == torch.float16
    _close(y.float(), ref, rtol=2e-3, atol=2e-3)


def test_best_alignment_parity():
    match, links, P_len, T_len = _batch()
    ref = dag_best_alignment(match, links, P_len, T_len, impl="torch")
    got = dag_best_alignment(match, links, P_len, T_len, impl="cuda")
    assert torch.equal(got, ref)


@pytest.mark.parametrize("beta,max_length,with_tok", [(1.0, None, True), (0.0, None, False), (2.5, 40, True)])
def test_joint_viterbi_parity(beta, max_length, with_tok):
    _, links, P_len, _ = _batch()
    tok = torch.randn(B, P, device=links.device).log_softmax(-1) if with_tok else None
    rv, rl, rs = dag_viterbi(links, tok, P_len, beta=beta, max_length=max_length, impl="torch")
    gv, gl, gs = dag_viterbi(links, tok, P_len, beta=beta, max_length=max_length, impl="cuda")
    assert torch.equal(gl, rl) and torch.equal(gv, rv)
    _close(gs, rs)


def test_cuda_inputs_unmodified():
    match, links, P_len, T_len = _batch()
    m0, l0 = match.clone(), links.clone()
    dag_log_likelihood(match.requires_grad_(), links, P_len, T_len, impl="cuda").sum().backward()
    dag_best_alignment(match.detach(), links, P_len, T_len, impl="cuda")
    dag_viterbi(links, None, P_len, impl="cuda")
    assert torch.equal(match.detach(), m0) and torch.equal(links, l0)
