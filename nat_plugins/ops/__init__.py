"""DAG dynamic programs for DA-Transformer: loss, best alignment, joint-Viterbi.

Imports torch only (never fairseq or the rest of ``nat_plugins``), so the GPU
tests and benchmarks run on a machine with nothing but a CUDA torch and nvcc.

Conventions shared by every op (Huang et al., "Directed Acyclic Transformer for
Non-Autoregressive Machine Translation", ICML 2022, §2):

* ``match`` ``[B, T, P]``: ``match[b, t, j] = log P(y_t | v_j)``.
* ``links`` ``[B, P, P]``: ``links[b, i, j] = log P(v_j | v_i)``; only ``i < j < P_b``
  is read, whatever the rest holds.
* ``output_length`` ``[B]`` = ``P_b`` (valid vertices), ``target_length`` ``[B]`` = ``T_b``.
* A path is a strictly increasing vertex sequence from vertex 0 to vertex ``P_b - 1``.
  So a 1-vertex path exists only when ``P_b = 1``.
* Size errors (``ValueError`` naming the sentence and the numbers, raised on the
  host before any kernel runs): ``P_b < 1``, ``T_b < 1``, lengths beyond the tensor
  dims, and "graph too small": ``T_b > P_b``.  Any ``T_b <= P_b`` is accepted; if no
  path has a finite score (e.g. ``T_b = 1 < P_b``, or ``-inf`` links) the likelihood
  is ``-inf`` (zero gradient), the alignment all ``-1``, the Viterbi length 0.
* The DP runs in fp32 or better (the likelihood's in fp64 in both implementations);
  fp16/bf16 inputs are accepted and outputs/gradients come back in the input dtype.
  Joint-Viterbi's ``token_logprobs`` are used in fp32 (fp64 for fp64 links), never
  rounded to the links' dtype.  Inputs are never modified.
* NaN on a sentence's own paths propagates as torch's ``amax``/``argmax``/``logsumexp``
  do: likelihood NaN (zero gradient), alignment all ``-1``, Viterbi length 0 with a
  NaN score; other sentences are unaffected.
* ``impl``: ``"torch"`` (reference), ``"cuda"`` (kernels; error if unavailable) or
  ``"auto"`` (kernels for CUDA tensors when they build *and* agree with the reference
  on a tiny self-check batch at the first CUDA call; otherwise the reference with one
  :class:`DagOpsFallbackWarning` per process and reason).  The environment variable
  ``NAT_PLUGINS_DAG_IMPL=torch|cuda`` overrides what ``"auto"`` picks (``cuda``: the
  kernels without the self-check); see ``cuda_build.resolve_impl``.
"""
from typing import Optional, Tuple, Union

import torch

from .cuda_build import DagOpsFallbackWarning, resolve_impl
from .dag_align_torch import dag_best_alignment_torch
from .dag_checks import check_dag_inputs, check_viterbi_inputs
from .dag_loss_torch import dag_log_likelihood_torch
from .dag_viterbi_torch import dag_viterbi_torch

__all__ = [
    "dag_log_likelihood",
    "dag_best_alignment",
    "dag_viterbi",
    "DagOpsFallbackWarning",
]


def dag_log_likelihood(
    match: torch.Tensor,
    links: torch.Tensor,
    output_length: torch.Tensor,
    target_length: torch.Tensor,
    impl: str = "auto",
) -> torch.Tensor:
    """log P(Y | X) of DA-Transformer (Huang et al., ICML 2022, §2.2, eq. 3-4).

    ``logsumexp`` over all paths ``a`` of exactly ``T_b`` vertices
    (``a_1 = 0 < ... < a_T = P_b - 1``) of ``sum_i links[a_i, a_{i+1}] + sum_t match[t, a_t]``.

    Args:
        match: ``[B, T, P]`` float, log P(y_t | v_j).
        links: ``[B, P, P]`` float, log P(v_j | v_i) (read for ``i < j < P_b``).
        output_length: ``[B]`` int, ``P_b <= P``.
        target_length: ``[B]`` int, ``1 <= T_b <= min(T, P_b)``.
        impl: ``"auto"`` | ``"torch"`` | ``"cuda"``.

    Returns:
        ``[B]`` in ``match.dtype``; ``-inf`` where no finite path exists.  Differentiable
        w.r.t. ``match`` and ``links`` by the forward-backward algorithm: memory
        O(B*T*P + B*P^2), not the O(T*B*P^2) of autograd through logsumexp.

    Raises:
        ValueError: impossible sizes, naming the sentence (see module docstring).
    """
    P_len, T_len = check_dag_inputs(match, links, output_length, target_length)
    if resolve_impl(impl, match, "loss") == "cuda":
        from .dag_cuda import dag_log_likelihood_cuda

        return dag_log_likelihood_cuda(match, links, P_len, T_len)
    return dag_log_likelihood_torch(match, links, P_len, T_len)


def dag_best_alignment(
    match: torch.Tensor,
    links: torch.Tensor,
    output_length: torch.Tensor,
    target_length: torch.Tensor,
    impl: str = "auto",
) -> torch.Tensor:
    """Target position of each vertex on the most probable path (Huang et al., ICML 2022, §3 glancing).

    The path maximises ``sum links + sum_t match[t, a_t]`` over the same paths as
    :func:`dag_log_likelihood` (max-product instead of sum-product).

    Args:
        match: ``[B, T, P]``; links: ``[B, P, P]``; output_length, target_length: ``[B]``.
        impl: ``"auto"`` | ``"torch"`` | ``"cuda"``.

    Returns:
        ``[B, P]`` long: ``t`` (0-based target index) on the path's vertices, ``-1`` elsewhere;
        all ``-1`` for a sentence with no finite path.  Ties go to the lowest predecessor.
    """
    P_len, T_len = check_dag_inputs(match, links, output_length, target_length)
    if resolve_impl(impl, match, "alignment") == "cuda":
        from .dag_cuda import dag_best_alignment_cuda

        return dag_best_alignment_cuda(match, links, P_len, T_len)
    return dag_best_alignment_torch(match, links, P_len, T_len)


def dag_viterbi(
    links: torch.Tensor,
    token_logprobs: Optional[torch.Tensor],
    output_length: torch.Tensor,
    beta: float = 1.0,
    max_length: Union[None, int, torch.Tensor] = None,
    impl: str = "auto",
    length_norm: str = "vertices",
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Joint-Viterbi decoding (Shao et al., 2022, "Viterbi Decoding of Directed Acyclic Transformer").

    Over all paths ``a`` from vertex 0 to ``P_b - 1`` with ``|a| <= max_length`` vertices,
    maximise ``(sum links along a + sum_i token_logprobs[a_i]) / n(a)^beta``.

    ``n(a)``: ``length_norm="transitions"`` divides by the number of transitions
    ``|a| - 1`` (at least 1, for the single-vertex path of a 1-vertex graph), as the
    DA-Transformer reference implementation does (REFERENCE.md §9) and as the
    ``dag_joint_viterbi`` decoding strategy asks; the default ``"vertices"`` divides by
    ``|a|`` (this op's earlier and only rule, kept as the default so that existing
    callers are unchanged).

    Args:
        links: ``[B, P, P]`` float.
        token_logprobs: ``[B, P]`` float, log-prob of the token chosen at each vertex
            (e.g. ``max_y log P(y | v_j)``); ``None`` means zeros (links-only Viterbi).
        output_length: ``[B]`` int, ``P_b``.
        beta: length-normalisation exponent (``0`` = plain Viterbi).
        max_length: ``None`` (= ``P_b``), an int, or ``[B]`` ints ``>= 1``; values above
            ``P_b`` act as ``P_b``.
        impl: ``"auto"`` | ``"torch"`` | ``"cuda"``.
        length_norm: ``"transitions"`` | ``"vertices"``.

    Returns:
        ``(vertices [B, L] long padded with -1, lengths [B] long, scores [B])`` with
        ``L = max(1, max lengths)`` and ``scores`` the normalised objective in
        ``links.dtype``.  A sentence with no finite path gets length 0 and score ``-inf``.
        Ties prefer the shorter path, then the lower predecessor.
    """
    if length_norm not in ("transitions", "vertices"):
        raise ValueError(f"length_norm must be 'transitions' or 'vertices', got {length_norm!r}")
    P_len, M_len = check_viterbi_inputs(links, token_logprobs, output_length, max_length, beta)
    if resolve_impl(impl, links, "viterbi") == "cuda":
        from .dag_cuda import dag_viterbi_cuda

        return dag_viterbi_cuda(links, token_logprobs, P_len, M_len, beta, length_norm)
    return dag_viterbi_torch(links, token_logprobs, P_len, M_len, beta, length_norm)
