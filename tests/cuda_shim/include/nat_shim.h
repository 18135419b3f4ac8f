// Host emulation of the CUDA execution model for the nat_plugins DAG kernels.
//
// Ours, written for tests only: it lets g++ compile the kernels in
// nat_plugins/ops/csrc unchanged (tests/cuda_shim/translate.py rewrites only
// the `<<<...>>>` launches and `extern __shared__` declarations) and run them
// on the CPU, so CI checks the real kernel code against the PyTorch reference.
//
// Execution model:
// * Blocks run one after another, so `__shared__` (a function-local static
//   here) is private to the running block.
// * Kernels without __syncthreads run their threads one after another on the
//   calling thread (fast; no intra-block communication to emulate).
// * Kernels that call __syncthreads run every thread of a block as a real OS
//   thread, meeting at a real barrier, so a missing barrier or a read of a
//   value another thread has not written yet shows up as a wrong result.
//   A __syncthreads reached in sequential mode aborts: the translator decides
//   the mode by looking for __syncthreads in the kernel's body.
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <barrier>
#include <functional>
#include <vector>

struct dim3 {
  unsigned int x, y, z;
  dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned int x, y, z;
};

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

// Bit cast between same-sized types (the half, bfloat16 and atomics stand-ins use it).
template <typename To, typename From> inline To nat_shim_bits(From x) {
  static_assert(sizeof(To) == sizeof(From), "bit cast of different sizes");
  To y;
  memcpy(&y, &x, sizeof(y));
  return y;
}

namespace nat_shim {

struct BlockContext {
  std::barrier<>* barrier = nullptr;  // null in sequential mode
  unsigned char* dynamic_smem = nullptr;
};
extern thread_local BlockContext* current_block;

inline void syncthreads() {
  if (current_block == nullptr || current_block->barrier == nullptr) {
    fprintf(stderr, "nat_shim: __syncthreads() in a kernel launched in sequential mode\n");
    abort();
  }
  current_block->barrier->arrive_and_wait();
}

inline unsigned char* dynamic_shared() { return current_block->dynamic_smem; }

// Runs `kernel` (a closure that calls the kernel with its arguments) over the grid.
void launch(dim3 grid, dim3 block, size_t smem, void* stream, bool uses_sync, const std::function<void()>& kernel);

}  // namespace nat_shim

#define __syncthreads() nat_shim::syncthreads()
