"""Build-on-first-use of the CUDA DAG kernels, and the choice between CUDA and PyTorch.

The extension is compiled once per (torch, CUDA, Python) combination with
``torch.utils.cpp_extension.load`` into ``$NAT_PLUGINS_CACHE`` (default
``~/.cache/nat_plugins``).  JIT-compile failures were the most common complaint
about DA-Transformer's kernels, so a failure here never takes training down
under ``impl="auto"``: it falls back to the PyTorch reference with one warning
that quotes the compiler's first error lines.  A kernel that builds is used
under ``"auto"`` only once it has matched the reference on a tiny batch in this
process (``self_check.check_ops``, run at the first CUDA call).

``NAT_PLUGINS_DAG_IMPL`` (environment) overrides what ``"auto"`` picks:
``torch`` (never build or use the kernels), ``cuda`` (the kernels without the
self-check, e.g. to time them), ``auto`` or unset (the default).  An explicit
``impl="cuda"`` / ``impl="torch"`` argument is never overridden.
"""
import os
import re
import sys
import warnings
from typing import Dict, Optional

import torch

__all__ = ["DagOpsFallbackWarning", "cache_dir", "load_extension", "resolve_impl", "csrc_dir", "ENV_IMPL"]

ENV_IMPL = "NAT_PLUGINS_DAG_IMPL"
_EXT = None
_BUILD_ERROR: Optional[str] = None
_WARNED = set()
# op -> None (agrees with the reference) or the reason it does not; None until checked.
_SELF_CHECK: Optional[Dict[str, Optional[str]]] = None


class DagOpsFallbackWarning(UserWarning):
    """``impl="auto"`` is using the PyTorch reference instead of the CUDA kernels."""


def csrc_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")


def cache_dir() -> str:
    """Build directory, keyed by the versions that make a build incompatible."""
    root = os.environ.get("NAT_PLUGINS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "nat_plugins")
    tag = "torch{}_cu{}_py{}{}".format(
        torch.__version__, torch.version.cuda or "none", sys.version_info[0], sys.version_info[1])
    return os.path.join(root, "dag_ops", re.sub(r"[^A-Za-z0-9_.-]", "_", tag))


def _first_error_lines(text: str, n: int = 8) -> str:
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.search(r"error|fatal", ln, re.IGNORECASE)]
    return "\n".join((errors or lines)[:n])


def load_extension(verbose: bool = False):
    """Compile (first call) and return the extension module; raises RuntimeError on failure.

    The failure is remembered, so a broken toolchain costs one compile attempt per process.
    """
    global _EXT, _BUILD_ERROR
    if _EXT is not None:
        return _EXT
    if _BUILD_ERROR is not None:
        raise RuntimeError(_BUILD_ERROR)
    try:
        if torch.version.cuda is None:
            raise RuntimeError(f"this torch ({torch.__version__}) is a CPU-only build")
        from torch.utils.cpp_extension import CUDA_HOME, load

        if CUDA_HOME is None:
            raise RuntimeError("no CUDA toolkit found (nvcc); set CUDA_HOME")
        src = csrc_dir()
        build = cache_dir()
        os.makedirs(build, exist_ok=True)
        _EXT = load(
            name="nat_plugins_dag_ops",
            sources=[os.path.join(src, f) for f in
                     ("dag_binding.cpp", "dag_loss.cu", "dag_align.cu", "dag_viterbi.cu")],
            extra_include_paths=[src],
            extra_cflags=["-O3"],
            # No -std here: torch passes the standard its headers need (C++17 or 20).
            extra_cuda_cflags=["-O3"],
            build_directory=build,
            verbose=verbose,
        )
        return _EXT
    except Exception as exc:  # compiler, ninja, missing toolkit: all become one message
        _BUILD_ERROR = "building the nat_plugins CUDA DAG kernels failed:\n" + _first_error_lines(str(exc))
        raise RuntimeError(_BUILD_ERROR) from exc


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, DagOpsFallbackWarning, stacklevel=4)


def _run_self_check(device) -> Dict[str, Optional[str]]:
    from .self_check import check_ops

    return check_ops(device)


def _env_impl() -> str:
    value = os.environ.get(ENV_IMPL, "auto").strip().lower() or "auto"
    if value not in ("auto", "torch", "cuda"):
        raise ValueError(f"{ENV_IMPL} must be 'auto', 'torch' or 'cuda', got {value!r}")
    return value


def resolve_impl(impl: str, tensor: torch.Tensor, op: str = "loss") -> str:
    """Return "cuda" or "torch" for a call of ``op`` with inputs on ``tensor.device``.

    ``"auto"``: the CUDA kernel for CUDA tensors when the extension builds and the
    op passed the self-check; otherwise the reference, with one warning per
    process and reason (no GPU / build failed / self-check of ``op`` failed).
    CPU tensors on a machine that has a GPU use the reference silently: that is
    the caller's choice of device, not a fallback.  ``NAT_PLUGINS_DAG_IMPL``
    overrides "auto" (see the module docstring).
    ``"cuda"``: the kernels or a clear error.  ``"torch"``: the reference.
    """
    global _SELF_CHECK
    if impl not in ("auto", "torch", "cuda"):
        raise ValueError(f"impl must be 'auto', 'torch' or 'cuda', got {impl!r}")
    if impl == "torch":
        return "torch"
    has_gpu = torch.cuda.is_available()
    if impl == "cuda":
        if not has_gpu:
            raise RuntimeError(
                "impl='cuda' needs a CUDA GPU and a CUDA build of torch, but torch.cuda.is_available() "
                f"is False (torch {torch.__version__}, CUDA {torch.version.cuda}); use impl='torch' or 'auto'")
        if tensor.device.type != "cuda":
            raise ValueError(f"impl='cuda' needs CUDA tensors, got tensors on {tensor.device}")
        load_extension()
        return "cuda"
    env = _env_impl()
    if env == "torch":
        return "torch"
    if not has_gpu:
        _warn_once("no_gpu", "nat_plugins.ops: no CUDA device, using the PyTorch reference DAG ops "
                             "(shown once; impl='torch' silences this)")
        return "torch"
    if tensor.device.type != "cuda":
        return "torch"
    try:
        load_extension()
    except RuntimeError as exc:
        _warn_once("build", f"nat_plugins.ops: falling back to the PyTorch reference DAG ops. {exc}")
        return "torch"
    if env == "cuda":
        return "cuda"
    if _SELF_CHECK is None:
        _SELF_CHECK = _run_self_check(tensor.device)
    reason = _SELF_CHECK.get(op)
    if reason is not None:
        _warn_once("self_check_" + op, (
            f"nat_plugins.ops: the CUDA {op} kernel disagrees with the PyTorch reference on the self-check "
            f"batch ({reason}); using the reference for it. {ENV_IMPL}=cuda forces the kernels."))
        return "torch"
    return "cuda"
