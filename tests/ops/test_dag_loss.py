"""DAG log-likelihood vs brute-force path enumeration (values and gradients)."""
import math

import pytest
import torch

import dag_brute_force as bf
from dag_test_utils import clean, random_batch
from nat_plugins.ops import dag_log_likelihood
from nat_plugins.ops.dag_loss_torch import dag_log_likelihood_torch

# Mixed lengths in one batch: T_b = P_b, T_b = 1 (path only if P_b = 1), T_b = 2, short graphs.
MIXED = dict(P_len=[8, 7, 6, 8, 3, 1, 5, 4, 8], T_len=[6, 2, 6, 1, 3, 1, 5, 4, 8])


def _check_against_brute(match, links, P_len, T_len, fn, rtol=1e-9, atol=1e-9):
    m = match.clone().requires_grad_()
    l = links.clone().requires_grad_()
    got = fn(m, l, P_len, T_len)
    m2 = clean(match).requires_grad_()
    l2 = clean(links).requires_grad_()
    ref = bf.log_likelihood(m2, l2, P_len, T_len)
    finite = torch.isfinite(ref)
    assert torch.equal(torch.isfinite(got), finite)
    torch.testing.assert_close(got[finite].double(), ref[finite], rtol=rtol, atol=atol)
    w = torch.linspace(0.5, 1.5, len(P_len), dtype=torch.float64)
    (got.double().nan_to_num(neginf=0.0) * w).sum().backward()
    if finite.any():
        (ref[finite] * w[finite]).sum().backward()
    ref_gm = m2.grad if m2.grad is not None else torch.zeros_like(m2)
    ref_gl = l2.grad if l2.grad is not None else torch.zeros_like(l2)
    torch.testing.assert_close(m.grad.double(), ref_gm, rtol=rtol, atol=atol)
    torch.testing.assert_close(l.grad.double(), ref_gl, rtol=rtol, atol=atol)
    return got


@pytest.mark.parametrize("mode", ["auto", "fast", "exact"])
def test_likelihood_and_grads_match_brute_force(mode):
    match, links, P_len, T_len = random_batch(**MIXED, seed=1)
    got = _check_against_brute(match, links, P_len, T_len,
                               lambda m, l, p, t: dag_log_likelihood_torch(m, l, p, t, mode=mode))
    assert got[3] == -math.inf and torch.isfinite(got[5])  # T_b = 1: P_b = 8 has no path, P_b = 1 has one


def test_public_api_torch_impl_and_padding_dims():
    # Tensor dims larger than every sentence: padding rows/columns are never read.
    match, links, P_len, T_len = random_batch(**MIXED, T=9, P=10, seed=2)
    _check_against_brute(match, links, P_len, T_len, lambda m, l, p, t: dag_log_likelihood(m, l, p, t, impl="torch"))


@pytest.mark.parametrize("mode", ["auto", "fast"])
def test_neg_inf_links(mode):
    # -inf links cut paths; sentences may lose every path (-inf, zero gradient).
    match, links, P_len, T_len = random_batch(**MIXED, seed=3, neg_inf_frac=0.25)
    _check_against_brute(match, links, P_len, T_len,
                         lambda m, l, p, t: dag_log_likelihood_torch(m, l, p, t, mode=mode))


def test_large_negative_links_need_exact_fallback():
    # Dynamic ranges of ~1e3 nats underflow even fp64 exp space; "auto" must detect it.
    match, links, P_len, T_len = random_batch(**MIXED, seed=4, link_scale=600.0)
    match = match * 300
    _check_against_brute(match, links, P_len, T_len,
                         lambda m, l, p, t: dag_log_likelihood_torch(m, l, p, t, mode="auto"), rtol=1e-9, atol=1e-7)
    fast = dag_log_likelihood_torch(match, links, P_len, T_len, mode="fast")
    ref = bf.log_likelihood(clean(match), clean(links), P_len, T_len)
    assert not torch.allclose(fast, ref, rtol=1e-6, atol=1e-6, equal_nan=True), "test no longer exercises the fallback"


def test_exact_fallback_backward_in_fp32():
    # Training runs fp32: the rows redone in log space (fp64) must be written back into the
    # fast path's fp32 gradients (this once raised "Index put requires the source and
    # destination dtypes match" mid-training, at the first underflowing batch).
    match, links, P_len, T_len = random_batch(**MIXED, seed=4, link_scale=600.0)
    match, links = (match * 300).float(), links.float()
    m = match.clone().requires_grad_()
    l = links.clone().requires_grad_()
    out = dag_log_likelihood_torch(m, l, P_len, T_len, mode="auto")
    w = torch.linspace(0.5, 1.5, len(P_len))
    (out.nan_to_num(neginf=0.0) * w).sum().backward()
    assert m.grad.dtype == torch.float32 and l.grad.dtype == torch.float32
    m64 = match.double().requires_grad_()
    l64 = links.double().requires_grad_()
    ref = dag_log_likelihood_torch(m64, l64, P_len, T_len, mode="exact")
    (ref.nan_to_num(neginf=0.0) * w.double()).sum().backward()
    torch.testing.assert_close(out.double(), ref.float().double(), rtol=1e-5, atol=1e-3, equal_nan=True)
    torch.testing.assert_close(m.grad.double(), m64.grad.float().double(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(l.grad.double(), l64.grad.float().double(), rtol=1e-4, atol=1e-5)


def test_uniform_large_negative_shift_is_exact_in_fast_mode():
    # A constant shift of -1e4 on every link only moves the column/row shifts.
    match, links, P_len, T_len = random_batch(**MIXED, seed=5)
    _check_against_brute(match, links - 1e4, P_len, T_len,
                         lambda m, l, p, t: dag_log_likelihood_torch(m, l, p, t, mode="fast"), rtol=1e-12, atol=1e-8)


def test_gradcheck_float64():
    match, links, P_len, T_len = random_batch([6, 5, 4], [4, 5, 2], seed=6, pad_value=0.0)
    m = match.clone().requires_grad_()
    l = links.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: dag_log_likelihood(a, b, P_len, T_len, impl="torch"), (m, l))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_inputs(dtype):
    match, links, P_len, T_len = random_batch(**MIXED, seed=7, pad_value=0.0)
    m = match.to(dtype).requires_grad_()
    l = links.to(dtype).requires_grad_()
    out = dag_log_likelihood(m, l, P_len, T_len, impl="torch")
    assert out.dtype == dtype
    out.nan_to_num(neginf=0.0).sum().backward()
    assert m.grad.dtype == dtype and l.grad.dtype == dtype
    # The DP itself is exact on the rounded inputs: compare with fp64 on the same values.
    m64 = m.detach().double().requires_grad_()
    l64 = l.detach().double().requires_grad_()
    ref = dag_log_likelihood(m64, l64, P_len, T_len, impl="torch")
    ref.nan_to_num(neginf=0.0).sum().backward()
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float32: 1e-6}[dtype]
    torch.testing.assert_close(out.double(), ref.to(dtype).double(), rtol=tol, atol=tol)
    torch.testing.assert_close(l.grad.double(), l64.grad.to(dtype).double(), rtol=tol, atol=tol)


def test_inputs_unmodified_and_batch_independent():
    match, links, P_len, T_len = random_batch(**MIXED, seed=8)
    m0, l0 = match.clone(), links.clone()
    m = match.requires_grad_()
    out = dag_log_likelihood(m, links, P_len, T_len, impl="torch")
    out.nan_to_num(neginf=0.0).sum().backward()
    assert torch.equal(match.detach().nan_to_num(), m0.nan_to_num()) and torch.equal(links.nan_to_num(), l0.nan_to_num())
    for b in (0, 4):
        alone = dag_log_likelihood(m0[b:b + 1], l0[b:b + 1], P_len[b:b + 1], T_len[b:b + 1], impl="torch")
        torch.testing.assert_close(alone[0], out[b].detach())


def test_backward_memory_is_linear_in_T():
    # Saved for backward: O(B*T*P + B*P^2), far below autograd's T*B*P^2.
    B, T, P = 4, 20, 64
    match, links, P_len, T_len = random_batch([P] * B, [T] * B, seed=9, dtype=torch.float32, pad_value=-1e4)
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    m = match.clone().requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        dag_log_likelihood(m, links, P_len, T_len, impl="torch")
    naive = T * B * P * P * 4
    assert sum(saved) < naive / 3, (sum(saved), naive)
