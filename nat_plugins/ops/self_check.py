"""First-use self-check of the CUDA DAG kernels against the PyTorch reference.

``impl="auto"`` trusts a kernel on a user's GPU only after it has reproduced
the reference on a tiny batch in that very process: a miscompile, a driver or
architecture problem, or a kernel bug then costs speed (the reference is used,
with a warning naming the difference), never wrong gradients in a training.

The batch (fp32, 3 sentences, T <= 5, P <= 9) covers mixed lengths, ``T_b = P_b``,
a sentence without a finite path and ``-inf`` links; the checks are the
likelihood and both gradients (relative 1e-4), the alignment (exact), and
joint-Viterbi under both length rules (paths exact, scores relative 1e-4).
"""
from typing import Callable, Dict, Optional

import torch

__all__ = ["OPS", "check_ops", "self_check_batch"]

OPS = ("loss", "alignment", "viterbi")
_RTOL, _ATOL = 1e-4, 1e-5


def self_check_batch(device) -> tuple:
    g = torch.Generator().manual_seed(1234)
    P_len = torch.tensor([9, 6, 5])
    T_len = torch.tensor([5, 2, 5])  # mixed, short, T_b = P_b
    B, T, P = 3, 5, 9
    match = torch.randn(B, T, P, generator=g).log_softmax(-1)
    links = torch.randn(B, P, P, generator=g)
    links[2, 1, 2] = float("-inf")  # cuts the only path of sentence 2: no finite path
    links[0, 0, 3] = float("-inf")
    tok = torch.randn(B, P, generator=g).log_softmax(-1)
    to = lambda x: x.to(device)  # noqa: E731
    return to(match), to(links), P_len, T_len, to(tok)


def _compare(name: str, got: torch.Tensor, ref: torch.Tensor, exact: bool = False) -> Optional[str]:
    got, ref = got.detach().cpu(), ref.detach().cpu()
    if got.shape != ref.shape or got.dtype != ref.dtype:
        return f"{name}: shape/dtype {tuple(got.shape)} {got.dtype} vs reference {tuple(ref.shape)} {ref.dtype}"
    if exact:
        return None if torch.equal(got, ref) else f"{name}: {got.tolist()} vs reference {ref.tolist()}"
    if not torch.equal(torch.isfinite(got), torch.isfinite(ref)):
        return f"{name}: finite where the reference is not (or the reverse)"
    f = torch.isfinite(ref)
    err = (got[f].double() - ref[f].double()).abs()
    bound = _ATOL + _RTOL * ref[f].double().abs()
    if bool((err > bound).any()):
        k = int((err - bound).argmax())
        return f"{name}: differs by {float(err[k]):.3g} at a value of {float(ref[f][k]):.6g}"
    return None


def _loss(cuda_fn, torch_fn, batch):
    match, links, P_len, T_len, _ = batch
    outs = []
    for fn in (cuda_fn, torch_fn):
        m = match.clone().requires_grad_()
        l = links.clone().requires_grad_()
        y = fn(m, l, P_len, T_len)
        w = torch.linspace(0.5, 1.5, y.shape[0], device=y.device, dtype=y.dtype)
        (y.nan_to_num(neginf=0.0) * w).sum().backward()
        outs.append((y, m.grad, l.grad))
    for name, got, ref in zip(("log-likelihood", "grad match", "grad links"), *outs):
        reason = _compare(name, got, ref)
        if reason:
            return reason
    return None


def _alignment(cuda_fn, torch_fn, batch):
    match, links, P_len, T_len, _ = batch
    return _compare("alignment", cuda_fn(match, links, P_len, T_len), torch_fn(match, links, P_len, T_len), True)


def _viterbi(cuda_fn, torch_fn, batch):
    _, links, P_len, _, tok = batch
    M_len = torch.minimum(P_len, torch.tensor(7))
    for norm in ("transitions", "vertices"):
        got = cuda_fn(links, tok, P_len, M_len, 1.0, norm)
        ref = torch_fn(links, tok, P_len, M_len, 1.0, norm)
        for name, g, r, exact in zip(("path", "length", "score"), got, ref, (True, True, False)):
            reason = _compare(f"joint-Viterbi ({norm}) {name}", g, r, exact)
            if reason:
                return reason
    return None


_CHECKS = {"loss": _loss, "alignment": _alignment, "viterbi": _viterbi}


def _default_impls() -> Dict[str, tuple]:
    from .dag_align_torch import dag_best_alignment_torch
    from .dag_cuda import dag_best_alignment_cuda, dag_log_likelihood_cuda, dag_viterbi_cuda
    from .dag_loss_torch import dag_log_likelihood_torch
    from .dag_viterbi_torch import dag_viterbi_torch

    return {"loss": (dag_log_likelihood_cuda, dag_log_likelihood_torch),
            "alignment": (dag_best_alignment_cuda, dag_best_alignment_torch),
            "viterbi": (dag_viterbi_cuda, dag_viterbi_torch)}


def check_ops(device, impls: Optional[Dict[str, tuple]] = None) -> Dict[str, Optional[str]]:
    """Run every op's kernel and reference on the self-check batch on ``device``.

    Args:
        device: where the kernels run (a CUDA device; the CPU for the test shim).
        impls: ``{op: (kernel_fn, reference_fn)}``; default: the CUDA and PyTorch functions.

    Returns:
        ``{op: None}`` when the op agrees, else ``{op: reason}`` (the first difference,
        or the exception the kernel raised).
    """
    impls = impls or _default_impls()
    result = {}
    # The first CUDA call may come from decoding (no_grad / inference_mode) or a training
    # step under autocast: the check needs gradients and full precision whatever the caller's mode.
    dev_type = torch.device(device).type
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(dev_type, enabled=False):
        batch = self_check_batch(device)
        for op in OPS:
            cuda_fn, torch_fn = impls[op]
            check: Callable = _CHECKS[op]
            try:
                result[op] = check(cuda_fn, torch_fn, batch)
            except Exception as exc:  # a failing kernel is a reason to fall back, not a crash
                result[op] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return result
