"""Python side of the CUDA DAG kernels: autograd wiring and output trimming.

Inputs are assumed validated (``dag_checks``) and resolved to impl="cuda"
(``cuda_build.resolve_impl``).  The kernels read the inputs' own dtype and
accumulate in fp32 (fp64 for fp64 inputs); the likelihood's DP state is fp64
(see ``csrc/dag_loss.cu``).  Nothing here is
CUDA-specific: the CPU test shim (``tests/cuda_shim``) runs these same
functions on CPU tensors with the kernels compiled for the host.
"""
import torch

from .cuda_build import load_extension
from .dag_common_torch import acc_dtype

__all__ = ["dag_log_likelihood_cuda", "dag_best_alignment_cuda", "dag_viterbi_cuda"]


def _prep(x: torch.Tensor, dtype=None) -> torch.Tensor:
    return x.to(dtype=dtype or x.dtype).contiguous()


class _DagLogLikelihoodCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, match, links, P_len, T_len):
        ext = load_extension()
        dt = torch.promote_types(match.dtype, links.dtype)
        m, l = _prep(match, dt), _prep(links, dt)
        logz, alpha = ext.loss_forward(m, l, P_len, T_len)
        ctx.save_for_backward(m, l, P_len, T_len, alpha)
        ctx.in_dtypes = (match.dtype, links.dtype)
        return logz.to(match.dtype)

    @staticmethod
    def backward(ctx, grad):
        if getattr(ctx, "consumed", False):
            raise RuntimeError("nat_plugins DAG ops: the CUDA likelihood supports one backward per forward "
                               "(its backward reuses the saved forward variables as scratch)")
        ctx.consumed = True
        m, l, P_len, T_len, alpha = ctx.saved_tensors
        gm, gl = load_extension().loss_backward(_prep(grad, m.dtype), m, l, P_len, T_len, alpha)
        return gm.to(ctx.in_dtypes[0]), gl.to(ctx.in_dtypes[1]), None, None


def dag_log_likelihood_cuda(match, links, output_length, target_length):
    """CUDA DAG log-likelihood; see ``nat_plugins.ops.dag_log_likelihood``."""
    dev = match.device
    return _DagLogLikelihoodCuda.apply(
        match, links, output_length.to(dev, torch.long).contiguous(), target_length.to(dev, torch.long).contiguous())


@torch.no_grad()
def dag_best_alignment_cuda(match, links, output_length, target_length):
    """CUDA best alignment; see ``nat_plugins.ops.dag_best_alignment``."""
    dev = match.device
    dt = torch.promote_types(match.dtype, links.dtype)
    return load_extension().best_alignment(
        _prep(match, dt), _prep(links, dt),
        output_length.to(dev, torch.long).contiguous(), target_length.to(dev, torch.long).contiguous())


@torch.no_grad()
def dag_viterbi_cuda(links, token_logprobs, output_length, max_length, beta, length_norm="vertices"):
    """CUDA joint-Viterbi; see ``nat_plugins.ops.dag_viterbi``.  max_length: [B] long, <= P_b."""
    dev = links.device
    # Token scores in the accumulator dtype, as the reference: fp16 links must not round them.
    tok = None if token_logprobs is None else _prep(token_logprobs, acc_dtype(links.dtype))
    Lmax = int(max_length.max())  # max_length comes from the host-side checks: no device sync
    max_length = max_length.to(dev, torch.long).contiguous()
    verts, lengths, scores = load_extension().joint_viterbi(
        _prep(links), tok, output_length.to(dev, torch.long).contiguous(), max_length, Lmax, float(beta),
        length_norm == "transitions")
    # Trim to the longest path found: one host sync for the whole batch, after the kernel.
    L_out = max(1, int(lengths.max()))
    return verts[:, :L_out], lengths, scores
