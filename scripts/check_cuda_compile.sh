#!/usr/bin/env bash
# Compile-check every CUDA source of nat_plugins.ops with a bare `nvcc -c`.
#
# The .cu files include only CUDA runtime headers, so this needs nvcc and nothing
# else (no GPU, no CUDA build of torch).  The binding (dag_binding.cpp) needs a
# CUDA torch and is built on first use instead; it is not checked here.
# Usage: scripts/check_cuda_compile.sh [ARCH ...]   (default: 80 90, i.e. A100 and H100)
# Env:   NVCC (default: nvcc on PATH), NVCC_FLAGS (extra flags).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
csrc="$here/nat_plugins/ops/csrc"
NVCC="${NVCC:-nvcc}"

if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "check_cuda_compile: nvcc not found; skipping the CUDA compile check."
  exit 0
fi

archs=("$@")
[ ${#archs[@]} -eq 0 ] && archs=(80 90)
gencode=()
for a in "${archs[@]}"; do gencode+=(-gencode "arch=compute_${a},code=sm_${a}"); done

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "check_cuda_compile: $("$NVCC" --version | tail -n 1); archs: ${archs[*]}"
status=0
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
exit $status
