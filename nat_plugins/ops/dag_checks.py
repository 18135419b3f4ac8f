"""Input validation shared by every DAG op (torch and CUDA paths alike).

The checks run on the host before any kernel is launched: DA-Transformer's own
CUDA loss turns an impossible size into a device-side assert ("graph too small",
its issue #11), which kills the CUDA context and names no sentence.  Here every
impossible size raises ``ValueError`` naming the sentence index and the numbers.

Semantics fixed here (and documented in ``nat_plugins.ops``):

* A path has ``T_b`` vertices, starts at vertex 0 and ends at vertex ``P_b - 1``.
  ``T_b > P_b`` can never be satisfied, so it is a size error ("graph too small").
* ``T_b <= P_b`` is always accepted, even when no path of finite score exists
  (``T_b = 1 < P_b``, or ``-inf`` links); the likelihood is then ``-inf``.
"""
from typing import Optional, Tuple

import torch

__all__ = ["check_dag_inputs", "check_viterbi_inputs", "FLOAT_DTYPES"]

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_lengths(name: str, lengths: torch.Tensor, batch: int) -> torch.Tensor:
    if not isinstance(lengths, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(lengths).__name__}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"{name} must have shape [B]=[{batch}], got {list(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {lengths.dtype}")
    # One host copy per call: the error messages need the numbers, and doing it
    # before any kernel keeps a bad batch from ever reaching the device.
    return lengths.detach().to("cpu", torch.long)


def _raise_first(bad: torch.Tensor, message) -> None:
    """Raise ValueError(message(b)) for the first sentence b flagged in ``bad``."""
    if bool(bad.any()):
        raise ValueError(message(int(bad.nonzero()[0, 0])))


def _check_float(name: str, x: torch.Tensor, dim: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimensions, got shape {list(x.shape)}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16/bfloat16/float32/float64, got {x.dtype}")


def check_dag_inputs(
    match: torch.Tensor,
    links: torch.Tensor,
    output_length: torch.Tensor,
    target_length: torch.Tensor,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Validate inputs of ``dag_log_likelihood`` / ``dag_best_alignment``.

    Args:
        match: ``[B, T, P]`` float.
        links: ``[B, P, P]`` float.
        output_length: ``[B]`` integer, ``P_b``.
        target_length: ``[B]`` integer, ``T_b``.

    Returns:
        ``(P_b, T_b)`` as CPU long tensors ``[B]``.

    Raises:
        ValueError / TypeError on malformed shapes or impossible sizes.
    """
    _check_float("match", match, 3)
    _check_float("links", links, 3)
    B, T, P = match.shape
    if tuple(links.shape) != (B, P, P):
        raise ValueError(
            f"links must have shape [B, P, P] = [{B}, {P}, {P}] to agree with match "
            f"[B, T, P] = {list(match.shape)}, got {list(links.shape)}")
    if links.device != match.device:
        raise ValueError(f"match is on {match.device} but links is on {links.device}")
    P_len = _check_lengths("output_length", output_length, B)
    T_len = _check_lengths("target_length", target_length, B)
    _raise_first(P_len < 1, lambda b: f"sentence {b}: output_length {int(P_len[b])} < 1 (the graph needs at least one vertex)")
    _raise_first(P_len > P, lambda b: f"sentence {b}: output_length {int(P_len[b])} exceeds the tensor's vertex dimension P={P}")
    _raise_first(T_len < 1, lambda b: f"sentence {b}: target_length {int(T_len[b])} < 1 (an empty target has no path)")
    _raise_first(T_len > T, lambda b: f"sentence {b}: target_length {int(T_len[b])} exceeds the tensor's target dimension T={T}")
    _raise_first(T_len > P_len, lambda b: (
        f"sentence {b}: graph too small for the target: target_length {int(T_len[b])} > "
        f"output_length {int(P_len[b])} (a path visits each vertex at most once)"))
    return P_len, T_len


def check_viterbi_inputs(
    links: torch.Tensor,
    token_logprobs: Optional[torch.Tensor],
    output_length: torch.Tensor,
    max_length,
    beta: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Validate inputs of ``dag_viterbi``.

    Args:
        links: ``[B, P, P]`` float.
        token_logprobs: ``[B, P]`` float or None.
        output_length: ``[B]`` integer, ``P_b``.
        max_length: None, int, or integer tensor ``[B]``; path-length bound in vertices.
        beta: length-normalisation exponent (finite float).

    Returns:
        ``(P_b, L_b)`` as CPU long tensors ``[B]`` where ``L_b = min(max_length_b, P_b)``.
    """
    _check_float("links", links, 3)
    B, P, P2 = links.shape
    if P != P2:
        raise ValueError(f"links must be square in its last two dims [B, P, P], got {list(links.shape)}")
    if token_logprobs is not None:
        _check_float("token_logprobs", token_logprobs, 2)
        if tuple(token_logprobs.shape) != (B, P):
            raise ValueError(f"token_logprobs must have shape [B, P] = [{B}, {P}], got {list(token_logprobs.shape)}")
        if token_logprobs.device != links.device:
            raise ValueError(f"links is on {links.device} but token_logprobs is on {token_logprobs.device}")
    if not isinstance(beta, (int, float)) or beta != beta or abs(beta) == float("inf"):
        raise ValueError(f"beta must be a finite number, got {beta!r}")
    P_len = _check_lengths("output_length", output_length, B)
    if max_length is None:
        M_len = P_len.clone()
    elif isinstance(max_length, torch.Tensor) and max_length.dim() == 1:
        M_len = _check_lengths("max_length", max_length, B)
    else:
        M_len = torch.full((B,), int(max_length), dtype=torch.long)
    _raise_first(P_len < 1, lambda b: f"sentence {b}: output_length {int(P_len[b])} < 1 (the graph needs at least one vertex)")
    _raise_first(P_len > P, lambda b: f"sentence {b}: output_length {int(P_len[b])} exceeds the tensor's vertex dimension P={P}")
    _raise_first(M_len < 1, lambda b: f"sentence {b}: max_length {int(M_len[b])} < 1 (a path has at least one vertex)")
    return P_len, torch.minimum(M_len, P_len)
