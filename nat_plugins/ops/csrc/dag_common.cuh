// Shared device helpers for the DAG kernels (DA-Transformer, Huang et al. 2022;
// joint-Viterbi, Shao et al. 2022).  CUDA runtime headers only: no ATen/c10, so
// every .cu here compiles with a bare `nvcc -c` (scripts/gpu/check_cuda_compile.sh).
#pragma once

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <math_constants.h>
#include <stdint.h>

#include "dag_launch.h"

namespace nat_dag {

// The DP accumulates in float for half/bfloat16/float inputs and in double for
// double inputs (so float64 gradchecks stay meaningful).
template <typename S> struct AccOf { typedef float type; };
template <> struct AccOf<double> { typedef double type; };

__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }
__device__ __forceinline__ float to_acc(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 x) { return __bfloat162float(x); }

// Overloads rather than templates: the storage type picks the conversion.
__device__ __forceinline__ void store(float* p, float x) { *p = x; }
__device__ __forceinline__ void store(double* p, double x) { *p = x; }
__device__ __forceinline__ void store(__half* p, float x) { *p = __float2half(x); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float x) { *p = __float2bfloat16(x); }

template <typename A> __device__ __forceinline__ A neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() { return -CUDART_INF_F; }
template <> __device__ __forceinline__ double neg_inf<double>() { return -CUDART_INF; }

__device__ __forceinline__ float exp_acc(float x) { return expf(x); }
__device__ __forceinline__ double exp_acc(double x) { return exp(x); }
__device__ __forceinline__ float log_acc(float x) { return logf(x); }
__device__ __forceinline__ double log_acc(double x) { return log(x); }
__device__ __forceinline__ float pow_acc(float x, double y) { return powf(x, (float)y); }
__device__ __forceinline__ double pow_acc(double x, double y) { return pow(x, y); }

// max/argmax with torch's NaN semantics (torch.amax propagates NaN, torch.argmax
// picks the first NaN): a NaN candidate wins over any number, nothing beats a NaN.
template <typename A> __device__ __forceinline__ bool beats(A x, A best) {
  return x != x ? best == best : x > best;
}

template <typename A> __device__ __forceinline__ bool is_finite_acc(A x) {
  return x == x && x != neg_inf<A>() && x != -neg_inf<A>();
}

// Streaming log-sum-exp: one exp per element, no second pass over the inputs.
template <typename A> struct LogSumExp {
  A m, s;
  __device__ __forceinline__ LogSumExp() : m(neg_inf<A>()), s(A(0)) {}
  __device__ __forceinline__ void add(A x) {
    if (x == neg_inf<A>()) return;  // also keeps exp(-inf - -inf) = NaN away
    if (x > m) {
      s = s * exp_acc(m - x) + A(1);
      m = x;
    } else {
      s += exp_acc(x - m);
    }
  }
  __device__ __forceinline__ A result() const { return m == neg_inf<A>() ? m : m + log_acc(s); }
};

inline unsigned int ceil_div(long long a, long long b) { return (unsigned int)((a + b - 1) / b); }

}  // namespace nat_dag

// Instantiates `BODY` with S (storage type) and A (accumulator type) for a runtime dtype code.
// Variadic so that commas inside the body (template arguments) need no parentheses.
#define NAT_DAG_DISPATCH(dtype, ...)                                                        \
  switch (dtype) {                                                                          \
    case nat_dag::kFloat32: { typedef float S; typedef float A; __VA_ARGS__; break; }          \
    case nat_dag::kFloat64: { typedef double S; typedef double A; __VA_ARGS__; break; }        \
    case nat_dag::kFloat16: { typedef __half S; typedef float A; __VA_ARGS__; break; }         \
    case nat_dag::kBFloat16: { typedef __nv_bfloat16 S; typedef float A; __VA_ARGS__; break; } \
    default: return cudaErrorInvalidValue;                              \
  }
