// Stand-in for the CUDA runtime header, for the host shim (see nat_shim.h).
// Only what the nat_plugins DAG kernels use.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nat_shim.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

typedef void* cudaStream_t;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "invalid value"; }
template <typename F> inline cudaError_t cudaFuncSetAttribute(F*, cudaFuncAttribute, int) { return cudaSuccess; }

inline int max(int a, int b) { return a > b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }

inline int __float_as_int(float x) { return nat_shim_bits<int>(x); }
inline unsigned int __float_as_uint(float x) { return nat_shim_bits<unsigned int>(x); }
inline long long __double_as_longlong(double x) { return nat_shim_bits<long long>(x); }

// Atomics as compare-and-swap loops: correct under real threads too.
template <typename T, typename Op> inline T nat_shim_atomic(T* addr, T val, Op op) {
  T old = __atomic_load_n(addr, __ATOMIC_SEQ_CST);
  while (!__atomic_compare_exchange_n(addr, &old, op(old, val), false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return old;
}
template <typename T> inline T nat_shim_max(T a, T b) { return a > b ? a : b; }
template <typename T> inline T nat_shim_min(T a, T b) { return a < b ? a : b; }
inline int atomicMax(int* a, int v) { return nat_shim_atomic(a, v, nat_shim_max<int>); }
inline long long atomicMax(long long* a, long long v) { return nat_shim_atomic(a, v, nat_shim_max<long long>); }
inline unsigned int atomicMin(unsigned int* a, unsigned int v) { return nat_shim_atomic(a, v, nat_shim_min<unsigned int>); }
inline unsigned long long atomicMin(unsigned long long* a, unsigned long long v) {
  return nat_shim_atomic(a, v, nat_shim_min<unsigned long long>);
}
