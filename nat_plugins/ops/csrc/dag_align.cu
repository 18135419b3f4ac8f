// DA-Transformer best alignment (Huang et al., ICML 2022, §2.3; used by glancing, §3).
//
// Max-product Viterbi over the likelihood's lattice.  One block per sentence
// runs all T_b steps with the two latest rows of scores in shared memory
// (threads own vertices; a step is one __syncthreads), writes back-pointers to
// global memory, and its thread 0 walks them back: the whole op, backtrace
// included, is a single launch with no host round trip.

#include "dag_common.cuh"

namespace nat_dag {
namespace {

template <typename S, typename A>
__global__ void best_alignment_kernel(const S* __restrict__ match, const S* __restrict__ links,
                                      const int64_t* __restrict__ out_len, const int64_t* __restrict__ tgt_len,
                                      int T, int P, int32_t* __restrict__ backptr, int64_t* __restrict__ align) {
  extern __shared__ unsigned char smem_raw[];
  A* prev = reinterpret_cast<A*>(smem_raw);
  A* cur = prev + P;
  const int b = blockIdx.x;
  const int Pb = (int)out_len[b], Tb = (int)tgt_len[b];
  const S* lk = links + (size_t)b * P * P;
  const S* mt = match + (size_t)b * T * P;
  int32_t* bp = backptr + (size_t)b * T * P;
  int64_t* al = align + (size_t)b * P;

  for (int j = threadIdx.x; j < P; j += blockDim.x) {
    prev[j] = (j == 0) ? to_acc(mt[0]) : neg_inf<A>();
    al[j] = -1;
  }
  __syncthreads();
  for (int t = 1; t < Tb; ++t) {
    for (int j = threadIdx.x; j < P; j += blockDim.x) {
      A best = neg_inf<A>();
      int arg = -1;
      if (j >= t && j <= Pb - Tb + t) {
        // Strict '>' keeps the lowest i among ties, and a NaN wins, as torch.argmax does.
        for (int i = t - 1; i < j; ++i) {
          const A x = prev[i] + to_acc(lk[(size_t)i * P + j]);
          if (beats(x, best)) {
            best = x;
            arg = i;
          }
        }
        // Added even without a finite predecessor: -inf + NaN is NaN, as in the reference.
        best += to_acc(mt[(size_t)t * P + j]);
      }
      cur[j] = best;
      bp[(size_t)t * P + j] = arg;
    }
    __syncthreads();
    A* tmp = prev;
    prev = cur;
    cur = tmp;
  }
  if (threadIdx.x == 0 && is_finite_acc(prev[Pb - 1])) {
    int v = Pb - 1;
    for (int t = Tb - 1; t >= 0; --t) {
      al[v] = t;
      if (t > 0) v = bp[(size_t)t * P + v];
    }
  }
}

}  // namespace

cudaError_t dag_best_alignment(int dtype, const void* match, const void* links, const int64_t* out_len,
                               const int64_t* tgt_len, int B, int T, int P, int32_t* backptr,
                               int64_t* align, cudaStream_t stream) {
  if (B == 0) return cudaSuccess;
  const int threads = P >= 1024 ? 1024 : ((P + 31) / 32) * 32;
  NAT_DAG_DISPATCH(dtype, {
    const size_t smem = 2 * (size_t)P * sizeof(A);
    if (smem > 48 * 1024) {
      cudaError_t e = cudaFuncSetAttribute(best_alignment_kernel<S, A>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
      if (e != cudaSuccess) return e;
    }
    best_alignment_kernel<S, A><<<B, threads, smem, stream>>>(
        static_cast<const S*>(match), static_cast<const S*>(links), out_len, tgt_len, T, P, backptr, align);
  });
  return cudaGetLastError();
}

}  // namespace nat_dag
