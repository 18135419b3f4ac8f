"""Fused vocabulary reductions against the unfused computations they replace (kept here as oracles)."""
import pytest
import torch

from nat_plugins.modules.vocab_projection import best_token_logprobs, glancing_scores, target_logprobs


def unfused_target_match(logits, target):
    """The DAG loss's computation before issue #20: gather, then subtract ``torch.logsumexp``."""
    logits = logits.float()
    B, P, _ = logits.shape
    picked = logits.gather(-1, target[:, None, :].expand(B, P, target.size(1)))
    return (picked - torch.logsumexp(logits, dim=-1, keepdim=True)).transpose(1, 2)


# (B, P, V, T, chunk): one span, spans of several sentences, spans smaller than one sentence
CASES = [(3, 7, 50, 4, None), (5, 11, 300, 6, 1000), (4, 9, 1000, 5, 1), (6, 13, 2000, 9, 50_000)]


def _inputs(B, P, V, T, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, P, V, generator=g) * 4
    target = torch.randint(0, V, (B, T), generator=g)
    target[:, 1] = target[:, 0]  # a token twice in a target: its gradient terms add up
    return logits, target


@pytest.mark.parametrize("B,P,V,T,chunk", CASES)
def test_target_logprobs_equals_log_softmax_gather_and_its_gradient(B, P, V, T, chunk):
    logits, target = _inputs(B, P, V, T)
    x_ref = logits.clone().requires_grad_()
    x_new = logits.clone().requires_grad_()
    ref = unfused_target_match(x_ref, target)
    new = target_logprobs(x_new, target, chunk_elements=chunk)
    assert new.shape == (B, T, P) and new.dtype == torch.float32
    assert torch.equal(new, ref)  # same operations, bit for bit
    assert torch.allclose(ref, torch.log_softmax(logits, -1).gather(-1, target[:, None, :].expand(B, P, T))
                          .transpose(1, 2), atol=1e-5)
    upstream = torch.randn(B, T, P, generator=torch.Generator().manual_seed(1))
    (g_ref,) = torch.autograd.grad(ref, x_ref, upstream)
    (g_new,) = torch.autograd.grad(new, x_new, upstream)
    assert (g_new - g_ref).abs().max().item() <= 1e-6


def test_target_logprobs_gradient_by_finite_differences():
    logits, target = _inputs(2, 3, 6, 3)
    x = logits.double().requires_grad_()

    def f(inp):  # target_logprobs works in fp32; compare its gradient with central differences in fp64
        return target_logprobs(inp.float(), target, chunk_elements=7).double()

    upstream = torch.randn(2, 3, 3, dtype=torch.double)
    (grad,) = torch.autograd.grad((f(x) * upstream).sum(), x)
    eps = 1e-2
    numeric = torch.zeros_like(x)
    flat = x.detach().view(-1)
    for i in range(flat.numel()):
        plus, minus = flat.clone(), flat.clone()
        plus[i] += eps
        minus[i] -= eps
        numeric.view(-1)[i] = ((f(plus.view_as(x)) - f(minus.view_as(x))) * upstream).sum() / (2 * eps)
    assert torch.allclose(grad, numeric, atol=2e-3)


def test_target_logprobs_keeps_no_vocabulary_sized_temporary_for_backward():
    logits, target = _inputs(4, 9, 500, 5)
    logits.requires_grad_()
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        target_logprobs(logits, target)
    big = [t for t in saved if t.numel() >= logits.numel()]
    # only the logits themselves (which the caller holds anyway), no log-probabilities
    assert len(big) == 1 and big[0].data_ptr() == logits.data_ptr()


@pytest.mark.parametrize("B,P,V,T,chunk", CASES)
def test_glancing_scores_are_the_match_and_the_argmax(B, P, V, T, chunk):
    logits, target = _inputs(B, P, V, T, seed=2)
    logits[0, 0, :3] = logits[0, 0].max() + 1.0  # a tie: the first index wins, as in argmax
    match, best = glancing_scores(logits, target, chunk_elements=chunk)
    assert torch.equal(match, unfused_target_match(logits, target))
    assert torch.equal(best, logits.argmax(-1)) and best[0, 0].item() == 0


def test_infinite_logits_give_what_the_unfused_computation_gives():
    logits, target = _inputs(3, 5, 400, 2, seed=3)
    logits[1, 2] = float("-inf")  # no finite logit: -inf normaliser, NaN scores, as torch.logsumexp gives
    logits[2, 3, 7] = float("inf")
    for chunk in (None, 1, 900):
        match, best = glancing_scores(logits, target, chunk_elements=chunk)
        torch.testing.assert_close(match, unfused_target_match(logits, target), rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(target_logprobs(logits, target, chunk_elements=chunk), match,
                                   rtol=0, atol=0, equal_nan=True)
        assert torch.equal(best, logits.argmax(-1))


def test_half_precision_logits_are_normalised_in_fp32():
    logits, target = _inputs(2, 4, 64, 3, seed=4)
    half = logits.half()
    assert torch.equal(target_logprobs(half, target), unfused_target_match(half, target))
    match, best = glancing_scores(half, target)
    assert match.dtype == torch.float32 and torch.equal(match, unfused_target_match(half, target))
    x = half.clone().requires_grad_()
    (grad,) = torch.autograd.grad(target_logprobs(x, target).sum(), x)
    assert grad.dtype == torch.float16


@pytest.mark.parametrize("chunk", [None, 5 * 300, 1 << 21])
def test_best_token_logprobs_of_some_rows_equal_the_full_projection_log_softmax(chunk):
    """Any subset of rows (1 to 13 of them, chunks of 5 rows with short tails) gives exactly the
    best token and log-probability that a log-softmax over the whole projected batch gives."""
    g = torch.Generator().manual_seed(5)
    weight = torch.randn(300, 32, generator=g)
    features = torch.randn(40, 32, generator=g)
    project = lambda x: torch.nn.functional.linear(x, weight)  # noqa: E731
    ref_score, ref_token = torch.log_softmax(project(features), -1).max(-1)
    for m in range(0, 14):
        rows = torch.randperm(40, generator=g)[:m]
        score, token = best_token_logprobs(features[rows], project, 300, chunk_elements=chunk)
        assert torch.equal(token, ref_token[rows]) and torch.equal(score, ref_score[rows]), m
