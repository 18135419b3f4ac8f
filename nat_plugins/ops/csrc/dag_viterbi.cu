// Joint-Viterbi decoding for DA-Transformer (Shao et al., 2022, "Viterbi Decoding
// of Directed Acyclic Transformer for Non-Autoregressive Machine Translation").
//
// Maximises (sum links + sum token_logprobs)/n^beta over paths 0 -> P_b-1 of at
// most max_len_b vertices, with n the number of vertices or, as in the
// DA-Transformer reference, of transitions (at least 1).  The normalisation does not decompose, so the DP keeps
// the best raw score per (length k, vertex j) and picks the length at the end.
// One block per sentence runs all lengths with two score rows in shared memory,
// the thread owning vertex P_b-1 keeps the running best normalised score, and
// thread 0 backtraces: one launch, no host round trip, no per-step Python.
// Step k only visits vertices >= k (a (k+1)-vertex path cannot end earlier) and
// i < j, about a sixth of L*P^2 work for L = P.

#include "dag_common.cuh"

namespace nat_dag {
namespace {

template <typename S, typename A>
__global__ void joint_viterbi_kernel(const S* __restrict__ links, const A* __restrict__ tok,
                                     const int64_t* __restrict__ out_len, const int64_t* __restrict__ max_len,
                                     int P, int Lmax, double beta, int per_transition, int32_t* __restrict__ backptr,
                                     int64_t* __restrict__ vertices, int64_t* __restrict__ lengths,
                                     S* __restrict__ scores) {
  extern __shared__ unsigned char smem_raw[];
  A* prev = reinterpret_cast<A*>(smem_raw);
  A* cur = prev + P;
  __shared__ A best_score;
  __shared__ int best_k;
  const int b = blockIdx.x;
  const int Pb = (int)out_len[b], Mb = (int)max_len[b];
  const S* lk = links + (size_t)b * P * P;
  const A* tk = tok ? tok + (size_t)b * P : nullptr;
  int32_t* bp = backptr + (size_t)b * Lmax * P;
  int64_t* vs = vertices + (size_t)b * Lmax;

  for (int j = threadIdx.x; j < P; j += blockDim.x) prev[j] = neg_inf<A>();
  for (int k = threadIdx.x; k < Lmax; k += blockDim.x) vs[k] = -1;
  if (threadIdx.x == 0) {
    prev[0] = tk ? tk[0] : A(0);
    best_score = neg_inf<A>();
    best_k = -1;
    if (Pb == 1) {  // the single-vertex path; its divisor is 1 under both rules
      best_score = prev[0];
      best_k = 0;
    }
  }
  __syncthreads();
  for (int k = 1; k < Mb; ++k) {
    for (int j = threadIdx.x; j < P; j += blockDim.x) {
      A best = neg_inf<A>();
      int arg = -1;
      if (j >= k && j < Pb) {
        for (int i = k - 1; i < j; ++i) {
          const A x = prev[i] + to_acc(lk[(size_t)i * P + j]);
          if (beats(x, best)) {  // NaN semantics of torch.amax/argmax
            best = x;
            arg = i;
          }
        }
        if (tk) best += tk[j];  // even without a predecessor: -inf + NaN is NaN, as in the reference
      }
      cur[j] = best;
      bp[(size_t)k * P + j] = arg;
      if (j == Pb - 1 && best != neg_inf<A>()) {
        // Only this thread touches best_*; strict '>' prefers the shorter path on ties.
        const A norm = best / pow_acc(A(per_transition ? k : k + 1), beta);
        if (beats(norm, best_score)) {
          best_score = norm;
          best_k = k;
        }
      }
    }
    __syncthreads();
    A* tmp = prev;
    prev = cur;
    cur = tmp;
  }
  if (threadIdx.x == 0) {
    // No finite optimum (no path, or NaN inputs): length 0, all -1, as the reference.
    const int kb = is_finite_acc(best_score) ? best_k : -1;
    lengths[b] = kb + 1;
    store(scores + b, best_score);
    int v = Pb - 1;
    for (int k = kb; k >= 0; --k) {
      vs[k] = v;
      if (k > 0) v = bp[(size_t)k * P + v];
    }
  }
}

}  // namespace

cudaError_t dag_joint_viterbi(int dtype, const void* links, const void* token_logprobs,
                              const int64_t* out_len, const int64_t* max_len, int B, int P, int Lmax,
                              double beta, int per_transition, int32_t* backptr, int64_t* vertices, int64_t* lengths,
                              void* scores, cudaStream_t stream) {
  if (B == 0) return cudaSuccess;
  const int threads = P >= 1024 ? 1024 : ((P + 31) / 32) * 32;
  NAT_DAG_DISPATCH(dtype, {
    const size_t smem = 2 * (size_t)P * sizeof(A);
    if (smem > 48 * 1024) {
      cudaError_t e = cudaFuncSetAttribute(joint_viterbi_kernel<S, A>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
      if (e != cudaSuccess) return e;
    }
    joint_viterbi_kernel<S, A><<<B, threads, smem, stream>>>(
        static_cast<const S*>(links), static_cast<const A*>(token_logprobs), out_len, max_len, P, Lmax,
        beta, per_transition, backptr, vertices, lengths, static_cast<S*>(scores));
  });
  return cudaGetLastError();
}

}  // namespace nat_dag
