"""The CUDA DAG kernels compiled for the CPU behind the host shim, as a stand-in extension.

``build()`` translates ``nat_plugins/ops/csrc/*.cu`` (``translate.py``), compiles
them with g++ against the shim headers (``include/``) into a shared library
cached under ``$NAT_PLUGINS_CACHE/cuda_shim/<hash of every input>``, and returns
a :class:`ShimExtension`: the same four functions as ``dag_binding.cpp``
(``loss_forward``, ``loss_backward``, ``best_alignment``, ``joint_viterbi``),
with the same arguments, output shapes and dtypes, but on CPU tensors.  Patched
in for ``cuda_build.load_extension``, it lets ``nat_plugins.ops.dag_cuda`` (the
autograd wiring) and the kernels run unchanged in CI.
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CSRC = os.path.join(ROOT, "nat_plugins", "ops", "csrc")
KERNELS = ("dag_loss.cu", "dag_align.cu", "dag_viterbi.cu")
SHIM_FILES = ("translate.py", "nat_shim.cpp", "capi.cpp", "include/nat_shim.h", "include/cuda_runtime.h",
              "include/cuda_fp16.h", "include/cuda_bf16.h", "include/math_constants.h")
DTYPE_CODE = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
CXX = os.environ.get("CXX", "g++")


class ShimBuildError(RuntimeError):
    pass


def compiler_available() -> bool:
    return shutil.which(CXX) is not None


def _inputs_digest(extra_flags) -> str:
    h = hashlib.sha256(" ".join([CXX] + list(extra_flags)).encode())
    for name in sorted(os.listdir(CSRC)):
        with open(os.path.join(CSRC, name), "rb") as f:
            h.update(name.encode() + f.read())
    for name in SHIM_FILES:
        with open(os.path.join(HERE, name), "rb") as f:
            h.update(name.encode() + f.read())
    return h.hexdigest()[:16]


def build(csrc: str = CSRC, extra_flags=(), cache_root=None) -> "ShimExtension":
    """Compile (or reuse) the shim library for the kernels in ``csrc``; raises ShimBuildError."""
    if not compiler_available():
        raise ShimBuildError(f"no C++ compiler ({CXX}) on PATH")
    root = cache_root or os.environ.get("NAT_PLUGINS_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "nat_plugins")
    key = _inputs_digest(extra_flags) if csrc == CSRC else None
    lib = os.path.join(root, "cuda_shim", key, "libnat_dag_shim.so") if key else None
    if lib and os.path.exists(lib):
        return ShimExtension(lib)
    work = tempfile.mkdtemp(prefix="nat_dag_shim_")
    try:
        sources = [os.path.join(csrc, k) for k in KERNELS]
        subprocess.run([sys.executable, os.path.join(HERE, "translate.py"), work] + sources, check=True)
        out = os.path.join(work, "libnat_dag_shim.so")
        cmd = [CXX, "-O2", "-std=c++20", "-shared", "-fPIC", "-pthread", "-Wall", "-Werror",
               "-I" + os.path.join(HERE, "include"), "-I" + csrc, *extra_flags,
               *[os.path.join(work, os.path.splitext(k)[0] + ".cpp") for k in KERNELS],
               os.path.join(HERE, "nat_shim.cpp"), os.path.join(HERE, "capi.cpp"), "-o", out]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise ShimBuildError("g++ failed:\n" + res.stderr[-4000:])
        if lib is None:  # a modified copy of the kernels (tests): not cached
            keep = tempfile.mkdtemp(prefix="nat_dag_shim_lib_")
            lib = os.path.join(keep, "libnat_dag_shim.so")
        os.makedirs(os.path.dirname(lib), exist_ok=True)
        tmp = lib + f".tmp{os.getpid()}"
        shutil.copyfile(out, tmp)
        os.replace(tmp, lib)  # atomic: a concurrent build never sees half a library
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ShimExtension(lib)


def _p(t):
    return ctypes.c_void_p(t.data_ptr()) if t is not None else None


class ShimExtension:
    """The binding's interface (dag_binding.cpp) over the shim library, for CPU tensors."""

    def __init__(self, path: str):
        self.path = path
        self.lib = ctypes.CDLL(path)
        for fn in ("shim_loss_forward", "shim_loss_backward", "shim_best_alignment", "shim_joint_viterbi"):
            getattr(self.lib, fn).restype = ctypes.c_int

    @staticmethod
    def _acc(t):
        return torch.float64 if t.dtype == torch.float64 else torch.float32

    @staticmethod
    def _check(*tensors):
        for t in tensors:
            if t is not None:
                assert t.device.type == "cpu" and t.is_contiguous(), "the shim needs contiguous CPU tensors"

    def _ok(self, status, op):
        if status != 0:
            raise RuntimeError(f"nat_plugins DAG ops: {op} kernel launch failed: status {status}")

    def loss_forward(self, match, links, out_len, tgt_len):
        self._check(match, links, out_len, tgt_len)
        assert links.dtype == match.dtype and out_len.dtype == tgt_len.dtype == torch.long
        B, T, P = match.shape
        alpha = torch.empty(B, T, P, dtype=torch.float64)
        logz = torch.empty(B, dtype=match.dtype)
        self._ok(self.lib.shim_loss_forward(DTYPE_CODE[match.dtype], _p(match), _p(links), _p(out_len), _p(tgt_len),
                                            B, T, P, _p(alpha), _p(logz)), "dag_loss_forward")
        return logz, alpha

    def loss_backward(self, grad, match, links, out_len, tgt_len, alpha):
        self._check(grad, match, links, out_len, tgt_len, alpha)
        assert grad.dtype == match.dtype == links.dtype and alpha.dtype == torch.float64
        B, T, P = match.shape
        logz = torch.empty(B, dtype=torch.float64)
        grad_match = torch.empty(B, T, P, dtype=self._acc(match))
        grad_links = torch.zeros(B, P, P, dtype=self._acc(match))
        self._ok(self.lib.shim_loss_backward(
            DTYPE_CODE[match.dtype], _p(grad), _p(match), _p(links), _p(out_len), _p(tgt_len), B, T, P, _p(alpha),
            _p(logz), _p(grad_match), _p(grad_links)), "dag_loss_backward")
        return grad_match, grad_links

    def best_alignment(self, match, links, out_len, tgt_len):
        self._check(match, links, out_len, tgt_len)
        assert links.dtype == match.dtype
        B, T, P = match.shape
        backptr = torch.empty(B, T, P, dtype=torch.int32)
        align = torch.empty(B, P, dtype=torch.long)
        self._ok(self.lib.shim_best_alignment(DTYPE_CODE[match.dtype], _p(match), _p(links), _p(out_len),
                                              _p(tgt_len), B, T, P, _p(backptr), _p(align)), "dag_best_alignment")
        return align

    def joint_viterbi(self, links, token_logprobs, out_len, max_len, Lmax, beta, per_transition):
        self._check(links, token_logprobs, out_len, max_len)
        if token_logprobs is not None:
            assert token_logprobs.dtype == self._acc(links), "token_logprobs must be in the accumulator dtype"
        B, P = links.shape[0], links.shape[1]
        backptr = torch.empty(B, Lmax, P, dtype=torch.int32)
        vertices = torch.empty(B, Lmax, dtype=torch.long)
        lengths = torch.empty(B, dtype=torch.long)
        scores = torch.empty(B, dtype=links.dtype)
        self._ok(self.lib.shim_joint_viterbi(
            DTYPE_CODE[links.dtype], _p(links), _p(token_logprobs), _p(out_len), _p(max_len), B, P, int(Lmax),
            ctypes.c_double(beta), int(bool(per_transition)), _p(backptr), _p(vertices), _p(lengths), _p(scores)),
            "dag_joint_viterbi")
        return vertices, lengths, scores
