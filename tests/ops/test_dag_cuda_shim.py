"""The CUDA kernels, compiled for the CPU behind tests/cuda_shim, against the PyTorch reference.

The .cu sources run unchanged except for their launch syntax (tests/cuda_shim/translate.py);
kernels with __syncthreads run one real thread per CUDA thread.  The Python side
(nat_plugins.ops.dag_cuda: autograd, dtype handling, trimming) is the production code.
Skipped, with the reason, where no C++ compiler is installed.
"""
import math

import pytest
import torch

import dag_brute_force as bf
from dag_test_utils import clean, random_batch
from nat_plugins.ops.dag_align_torch import dag_best_alignment_torch
from nat_plugins.ops.dag_loss_torch import dag_log_likelihood_torch
from nat_plugins.ops.dag_viterbi_torch import dag_viterbi_torch
from shim_fixtures import kernels, parity_batch, shim  # noqa: F401  (fixtures)

RTOL = 1e-4


def _close(got, ref, rtol=RTOL, atol=1e-6):
    torch.testing.assert_close(got, ref, rtol=rtol, atol=atol, equal_nan=False)


def _loss_and_grads(fn, match, links, P_len, T_len):
    m = match.clone().requires_grad_()
    l = links.clone().requires_grad_()
    y = fn(m, l, P_len, T_len)
    w = torch.linspace(0.5, 1.5, y.shape[0], dtype=y.dtype)
    (y.nan_to_num(neginf=0.0) * w).sum().backward()
    return y.detach(), m.grad, l.grad


def _check_loss(kernels, match, links, P_len, T_len, rtol=RTOL, atol=1e-6, ref_mode="auto"):
    got = _loss_and_grads(kernels.dag_log_likelihood_cuda, match, links, P_len, T_len)
    ref = _loss_and_grads(lambda *a: dag_log_likelihood_torch(*a, mode=ref_mode), match, links, P_len, T_len)
    for g, r in zip(got, ref):
        assert g.dtype == r.dtype
        _close(g, r, rtol, atol)
    return got


def _check_viterbi(kernels, links, tok, P_len, M_len, beta, norm):
    got = kernels.dag_viterbi_cuda(links, tok, P_len, M_len, beta, norm)
    ref = dag_viterbi_torch(links, tok, P_len, M_len, beta, norm)
    assert torch.equal(got[1], ref[1]) and torch.equal(got[0], ref[0])
    assert got[2].dtype == ref[2].dtype
    _close(got[2], ref[2])
    return got


# --------------------------------------------------------------------------- the GPU test's parity batch
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_parity_batch_likelihood(kernels, dtype):
    got = _check_loss(kernels, *parity_batch(dtype), rtol=RTOL if dtype == torch.float32 else 1e-10)
    assert got[0][6] == -math.inf and torch.isfinite(got[0][:6]).all()  # T_b = 1 < P_b has no path


def test_parity_batch_alignment_and_viterbi(kernels):
    match, links, P_len, T_len = parity_batch()
    assert torch.equal(kernels.dag_best_alignment_cuda(match, links, P_len, T_len),
                       dag_best_alignment_torch(match, links, P_len, T_len))
    tok = torch.randn(8, links.shape[1], generator=torch.Generator().manual_seed(5)).log_softmax(-1)
    # One full-length run (every path length), the other rules with a length cap (threads are slow here).
    _check_viterbi(kernels, links, tok, P_len, P_len, 1.0, "transitions")
    cap = torch.clamp(P_len, max=40)
    _check_viterbi(kernels, links, None, P_len, cap, 0.0, "vertices")
    _check_viterbi(kernels, links, tok, P_len, cap, 2.5, "vertices")


# --------------------------------------------------------------------------- precision at realistic sizes
def test_likelihood_gradients_at_T256_P1024(kernels):
    # fp32 inputs, B=2, T=256, P=1024: 1e-4 relative needs the fp64 DP state (fp32 alpha/beta
    # of ~-2600 nats gave ~1e-3).  The reference runs its exp-space path ("fast"): its
    # underflow guard would redo both sentences in log space, 60x slower, for cells far below
    # the row maximum that carry no probability mass.
    match, links, P_len, T_len = parity_batch(B=2, T=256, P=1024, P_len=[1024, 1000], T_len=[256, 200])
    got = _check_loss(kernels, match, links, P_len, T_len, ref_mode="fast")
    assert (got[0] < -2000).all()  # magnitudes where fp32 DP state loses 1e-4


# --------------------------------------------------------------------------- edge cases against brute force
MIXED = dict(P_len=[8, 7, 6, 8, 3, 1, 5, 4, 8], T_len=[6, 2, 6, 1, 3, 1, 5, 4, 8])


@pytest.mark.parametrize("neg_inf_frac", [0.0, 0.3])
def test_edge_cases_padded_dims_neg_inf_links_single_vertex(kernels, neg_inf_frac):
    # P_b = 1 (sentence 5), no valid path (3: T_b = 1 < P_b; more with -inf links), T_b = P_b,
    # tensor dims larger than every sentence (T=9, P=11) with NaN padding that must never be read.
    match, links, P_len, T_len = random_batch(**MIXED, T=9, P=11, seed=3, neg_inf_frac=neg_inf_frac)
    got = _check_loss(kernels, match, links, P_len, T_len, rtol=1e-10, atol=1e-12)
    ref = bf.log_likelihood(clean(match), clean(links), P_len, T_len)
    _close(got[0], ref, 1e-10, 1e-12)
    assert got[0][3] == -math.inf and torch.isfinite(got[0][5])
    align = kernels.dag_best_alignment_cuda(match, links, P_len, T_len)
    assert torch.equal(align, bf.best_alignment(clean(match), clean(links), P_len, T_len)[0])
    tok = torch.randn(9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for norm in ("transitions", "vertices"):
        verts, lengths, scores = _check_viterbi(kernels, links, tok, P_len, P_len, 1.0, norm)
        for b, (path, best) in enumerate(bf.joint_viterbi(clean(links), tok, P_len, P_len, 1.0, norm)):
            assert tuple(verts[b, : int(lengths[b])].tolist()) == (path or ())
            assert math.isclose(float(scores[b]), best, rel_tol=1e-9) if path else scores[b] == -math.inf


@pytest.mark.parametrize("max_length", [1, 3, "tensor"])
def test_viterbi_max_length_variants(kernels, max_length):
    _, links, P_len, _ = random_batch(**MIXED, seed=21)
    tok = torch.randn(9, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(22))
    M = torch.tensor([2, 9, 1, 2, 4, 5, 3, 1, 8]) if max_length == "tensor" else torch.full((9,), max_length)
    M = torch.minimum(M, P_len)
    for beta, norm in ((0.0, "vertices"), (2.5, "transitions"), (0.1, "vertices")):
        verts, lengths, _ = _check_viterbi(kernels, links, tok, P_len, M, beta, norm)
        assert (lengths <= M).all()


def test_more_vertices_than_threads_per_block(kernels):
    # P = 1100 > 1024 threads: every thread of alignment and Viterbi owns two vertices.
    match, links, P_len, T_len = parity_batch(B=2, T=3, P=1100, P_len=[1100, 1050], T_len=[3, 2])
    _check_loss(kernels, match, links, P_len, T_len)
    assert torch.equal(kernels.dag_best_alignment_cuda(match, links, P_len, T_len),
                       dag_best_alignment_torch(match, links, P_len, T_len))
    _check_viterbi(kernels, links, match[:, 0].float(), P_len, torch.tensor([4, 3]), 1.0, "transitions")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_and_bfloat16_inputs(kernels, dtype):
    match, links, P_len, T_len = random_batch(**MIXED, seed=7, pad_value=0.0)
    match, links = match.to(dtype), links.to(dtype)
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]  # one rounding of the output dtype
    got = _check_loss(kernels, match, links, P_len, T_len, rtol=tol, atol=tol)
    assert all(g.dtype == dtype for g in got)
    assert torch.equal(kernels.dag_best_alignment_cuda(match, links, P_len, T_len),
                       dag_best_alignment_torch(match, links, P_len, T_len))
    # fp32 token scores with low-precision links: used unrounded, as the reference does.
    tok = torch.randn(9, 8, generator=torch.Generator().manual_seed(8)) * 1e-3 - 0.5
    verts, lengths, scores = _check_viterbi(kernels, links, tok, P_len, P_len, 1.0, "transitions")
    assert scores.dtype == dtype


# --------------------------------------------------------------------------- NaN, inputs, batch independence
def test_nan_inputs_follow_the_reference(kernels):
    # NaN on a sentence's own paths propagates as torch.amax/argmax/logsumexp do: likelihood NaN,
    # alignment all -1, Viterbi length 0 with a NaN score; the other sentences are unaffected.
    # (NaN off every path of a sentence is never read by the kernels; the reference's result
    # there depends on the other sentences of the batch, so it is not compared.)
    match, links, P_len, T_len = random_batch(**MIXED, seed=9, pad_value=0.0)
    links[0, 1, 3] = float("nan")
    match[1, 1, 6] = float("nan")  # sentence 1's last vertex
    y = kernels.dag_log_likelihood_cuda(match, links, P_len, T_len)
    ref = dag_log_likelihood_torch(match, links, P_len, T_len)
    assert torch.isnan(y[:2]).all() and torch.isnan(ref[:2]).all()
    torch.testing.assert_close(y[2:], ref[2:], rtol=1e-10, atol=1e-12)
    align = kernels.dag_best_alignment_cuda(match, links, P_len, T_len)
    assert torch.equal(align, dag_best_alignment_torch(match, links, P_len, T_len))
    assert (align[:2] == -1).all() and (align[2] >= 0).any()
    tok = torch.randn(9, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    tok[4, 2] = float("nan")
    for norm in ("transitions", "vertices"):
        got = kernels.dag_viterbi_cuda(links, tok, P_len, P_len, 1.0, norm)
        ref = dag_viterbi_torch(links, tok, P_len, P_len, 1.0, norm)
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
        torch.testing.assert_close(got[2], ref[2], equal_nan=True)
        assert torch.isnan(got[2][[0, 4]]).all() and (got[1][[0, 4]] == 0).all()


def test_inputs_unmodified_and_sentences_independent(kernels):
    match, links, P_len, T_len = parity_batch(B=8, T=12, P=40, P_len=[40, 33, 12, 40, 20, 5, 40, 9],
                                              T_len=[12, 10, 12, 1, 7, 5, 2, 9])
    m0, l0 = match.clone(), links.clone()
    y, gm, gl = _loss_and_grads(kernels.dag_log_likelihood_cuda, match, links, P_len, T_len)
    kernels.dag_best_alignment_cuda(match, links, P_len, T_len)
    kernels.dag_viterbi_cuda(links, match[:, 0].contiguous(), P_len, P_len, 1.0, "transitions")
    assert torch.equal(match, m0) and torch.equal(links, l0)
    for b in (0, 4):
        s = slice(b, b + 1)
        y1, gm1, gl1 = _loss_and_grads(kernels.dag_log_likelihood_cuda, match[s], links[s], P_len[s], T_len[s])
        w = float(torch.linspace(0.5, 1.5, 8)[b]) / 0.5  # the batch's weight over the lone sentence's
        _close(y1[0], y[b], 1e-6)
        _close(gm1[0] * w, gm[b], 1e-5)
        _close(gl1[0] * w, gl[b], 1e-5)


def test_second_backward_is_refused(kernels):
    # The backward sweep overwrites the saved alpha with beta: a retained graph must not reuse it.
    match, links, P_len, T_len = parity_batch(B=2, T=4, P=9, P_len=[9, 7], T_len=[4, 3])
    y = kernels.dag_log_likelihood_cuda(match.requires_grad_(), links, P_len, T_len)
    y.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward per forward"):
        y.sum().backward()
