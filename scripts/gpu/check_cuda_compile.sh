#!/usr/bin/env bash
# Compile-check every CUDA source of nat_plugins.ops, without a GPU.
#
# 1. Each .cu file with a bare `nvcc -c` (they include only CUDA runtime headers).
# 2. The PyTorch binding (dag_binding.cpp), syntax only (`g++ -fsyntax-only`),
#    against the installed torch's headers, Python's and the CUDA toolkit's.  A
#    CPU-only torch wheel ships the c10/cuda headers but not the one its CUDA
#    build generates (c10/cuda/impl/cuda_cmake_macros.h); a stand-in kept in
#    tests/cuda_shim/torch_stand_in fills that gap, searched after torch's own
#    paths so a CUDA torch's real header wins.
# Steps whose tools are missing are skipped with a message (exit 0); a failing
# compile exits 1.
# Usage: scripts/gpu/check_cuda_compile.sh [ARCH ...]   (default: 80 90, i.e. A100 and H100)
# Env:   NVCC (default: nvcc on PATH), NVCC_FLAGS (extra flags), CXX (default g++),
#        PY (python with torch; default .venv/bin/python, else python3), CUDA_HOME.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
csrc="$here/nat_plugins/ops/csrc"
NVCC="${NVCC:-nvcc}"
CXX="${CXX:-g++}"
PY="${PY:-}"
if [ -z "$PY" ]; then
  if [ -x "$here/.venv/bin/python" ]; then PY="$here/.venv/bin/python"; else PY=python3; fi
fi

status=0
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# ---- 1. kernels with nvcc
if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "check_cuda_compile: nvcc not found; skipping the kernel compile check."
else
  archs=("$@")
  [ ${#archs[@]} -eq 0 ] && archs=(80 90)
  gencode=()
  for a in "${archs[@]}"; do gencode+=(-gencode "arch=compute_${a},code=sm_${a}"); done
  echo "check_cuda_compile: $("$NVCC" --version | tail -n 1); archs: ${archs[*]}"
  shopt -s nullglob
  sources=("$csrc"/*.cu)
  if [ ${#sources[@]} -eq 0 ]; then
    echo "check_cuda_compile: no .cu files under $csrc" >&2
    exit 1
  fi
  # The same macros torch.utils.cpp_extension passes, so half/bf16 code that only
  # compiles with implicit conversions is caught here too.
  torch_macros=(-D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__
                -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__)
  for src in "${sources[@]}"; do
    name="$(basename "$src" .cu)"
    # shellcheck disable=SC2086
    if "$NVCC" -c -std=c++17 -O3 -Werror all-warnings "${gencode[@]}" "${torch_macros[@]}" \
        -I"$csrc" ${NVCC_FLAGS:-} "$src" -o "$out/$name.o"; then
      echo "  ok   $name.cu"
    else
      echo "  FAIL $name.cu" >&2
      status=1
    fi
  done
fi

# ---- 2. the binding, syntax only
cuda_inc=""
for d in "${CUDA_HOME:-}" "$(dirname "$(dirname "$(command -v "$NVCC" 2>/dev/null || echo /nonexistent/bin/nvcc)")")" \
         /usr/local/cuda; do
  if [ -n "$d" ] && [ -f "$d/include/cuda_runtime_api.h" ]; then cuda_inc="$d/include"; break; fi
done
if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "check_cuda_compile: $CXX not found; skipping the binding syntax check."
elif [ -z "$cuda_inc" ]; then
  echo "check_cuda_compile: no CUDA runtime headers (cuda_runtime_api.h); skipping the binding syntax check."
elif ! incs="$("$PY" -c 'import sysconfig; from torch.utils.cpp_extension import include_paths
print("\n".join(include_paths() + [sysconfig.get_paths()["include"]]))' 2>/dev/null)"; then
  echo "check_cuda_compile: $PY cannot import torch; skipping the binding syntax check."
else
  inc_flags=()
  while IFS= read -r d; do inc_flags+=(-I"$d"); done <<<"$incs"
  if "$CXX" -fsyntax-only -std=c++20 "${inc_flags[@]}" -I"$cuda_inc" -I"$csrc" \
      -idirafter "$here/tests/cuda_shim/torch_stand_in" -DTORCH_EXTENSION_NAME=nat_plugins_dag_ops \
      "$csrc/dag_binding.cpp"; then
    echo "  ok   dag_binding.cpp (syntax, $($PY -c 'import torch; print("torch", torch.__version__)'))"
  else
    echo "  FAIL dag_binding.cpp" >&2
    status=1
  fi
fi
exit $status
