// DA-Transformer log-likelihood, forward and backward (Huang et al., ICML 2022, §2.2-2.3).
//
// Forward, one launch per step t (the steps are sequential; each launch is
// fully parallel over sentences and vertices):
//   alpha[b,t,j] = logsumexp_{i<j} (alpha[b,t-1,i] + links[b,i,j]) + match[b,t,j]
// Backward: beta by the mirror recursion, then the posteriors
//   d/d match[b,t,j]  = exp(alpha + beta - logZ)
//   d/d links[b,i,j]  = sum_t exp(alpha[t,i] + links[i,j] + match[t+1,j] + beta[t+1,j] - logZ)
// in log space throughout (exact; the GPU can afford the exps).  Only cells in
// the band of complete paths (t <= j <= P_b - T_b + t) are ever computed; the
// rest hold -inf, so padding in the inputs is never read.
// Memory: alpha and beta, 2*B*T*P accumulators, besides inputs and gradients.

#include "dag_common.cuh"

namespace nat_dag {
namespace {

constexpr int kThreads = 256;

template <typename S, typename A>
__global__ void alpha_step_kernel(const S* __restrict__ match, const S* __restrict__ links,
                                  const int64_t* __restrict__ out_len, const int64_t* __restrict__ tgt_len,
                                  int T, int P, int t, A* __restrict__ alpha) {
  const int b = blockIdx.y;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= P) return;
  const int Pb = (int)out_len[b], Tb = (int)tgt_len[b];
  A* al = alpha + (size_t)b * T * P;
  A val = neg_inf<A>();
  if (t < Tb && j >= t && j <= Pb - Tb + t) {
    if (t == 0) {
      if (j == 0) val = to_acc(match[(size_t)b * T * P]);
    } else {
      // Threads of a warp share i and read consecutive j: coalesced rows of links.
      const S* lk = links + (size_t)b * P * P;
      const A* prev = al + (size_t)(t - 1) * P;
      LogSumExp<A> acc;
      for (int i = t - 1; i < j; ++i) {
        const A a = prev[i];
        if (a != neg_inf<A>()) acc.add(a + to_acc(lk[(size_t)i * P + j]));
      }
      val = acc.result() + to_acc(match[((size_t)b * T + t) * P + j]);
    }
  }
  al[(size_t)t * P + j] = val;
}

template <typename S, typename A>
__global__ void logz_kernel(const A* __restrict__ alpha, const int64_t* __restrict__ out_len,
                            const int64_t* __restrict__ tgt_len, int B, int T, int P, S* __restrict__ logz) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= B) return;
  store(logz + b, alpha[((size_t)b * T + (tgt_len[b] - 1)) * P + (out_len[b] - 1)]);
}

template <typename S, typename A>
__global__ void beta_step_kernel(const S* __restrict__ match, const S* __restrict__ links,
                                 const int64_t* __restrict__ out_len, const int64_t* __restrict__ tgt_len,
                                 int T, int P, int t, A* __restrict__ beta) {
  const int b = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= P) return;
  const int Pb = (int)out_len[b], Tb = (int)tgt_len[b];
  A* be = beta + (size_t)b * T * P;
  A val = neg_inf<A>();
  if (t < Tb && i >= t && i <= Pb - Tb + t) {
    if (t == Tb - 1) {
      if (i == Pb - 1) val = A(0);
    } else {
      const S* lk = links + ((size_t)b * P + i) * P;
      const S* mt = match + ((size_t)b * T + t + 1) * P;
      const A* next = be + (size_t)(t + 1) * P;
      const int j_hi = Pb - Tb + t + 1;  // last vertex that can be step t+1
      LogSumExp<A> acc;
      for (int j = i + 1; j <= j_hi; ++j) {
        const A n = next[j];
        if (n != neg_inf<A>()) acc.add(n + to_acc(lk[j]) + to_acc(mt[j]));
      }
      val = acc.result();
    }
  }
  be[(size_t)t * P + i] = val;
}

template <typename S, typename A>
__device__ __forceinline__ A sentence_logz(const A* alpha, const int64_t* out_len, const int64_t* tgt_len,
                                           int b, int T, int P) {
  return alpha[((size_t)b * T + (tgt_len[b] - 1)) * P + (out_len[b] - 1)];
}

template <typename S, typename A>
__global__ void grad_match_kernel(const S* __restrict__ grad, const A* __restrict__ alpha,
                                  const A* __restrict__ beta, const int64_t* __restrict__ out_len,
                                  const int64_t* __restrict__ tgt_len, int B, int T, int P,
                                  S* __restrict__ grad_match) {
  const size_t n = (size_t)B * T * P;
  for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
       idx += (size_t)gridDim.x * blockDim.x) {
    const int b = (int)(idx / ((size_t)T * P));
    const A logz = sentence_logz<S, A>(alpha, out_len, tgt_len, b, T, P);
    const A s = alpha[idx] + beta[idx];
    A g = A(0);
    if (logz != neg_inf<A>() && s != neg_inf<A>()) g = to_acc(grad[b]) * exp_acc(s - logz);
    store(grad_match + idx, g);
  }
}

template <typename S, typename A>
__global__ void grad_links_kernel(const S* __restrict__ grad, const S* __restrict__ match,
                                  const S* __restrict__ links, const A* __restrict__ alpha,
                                  const A* __restrict__ beta, const int64_t* __restrict__ out_len,
                                  const int64_t* __restrict__ tgt_len, int B, int T, int P,
                                  S* __restrict__ grad_links) {
  const size_t n = (size_t)B * P * P;
  for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
       idx += (size_t)gridDim.x * blockDim.x) {
    const int b = (int)(idx / ((size_t)P * P));
    const int i = (int)((idx / P) % P);
    const int j = (int)(idx % P);
    const int Pb = (int)out_len[b], Tb = (int)tgt_len[b];
    A total = A(0);
    const A logz = sentence_logz<S, A>(alpha, out_len, tgt_len, b, T, P);
    if (i < j && j < Pb && logz != neg_inf<A>()) {
      const A l = to_acc(links[idx]) - logz;
      const A* al = alpha + (size_t)b * T * P;
      const A* be = beta + (size_t)b * T * P;
      const S* mt = match + (size_t)b * T * P;
      // Edge i->j is transition t->t+1 only inside both bands.
      const int t_lo = max(0, j - 1 - (Pb - Tb));
      const int t_hi = min(i, Tb - 2);
      for (int t = t_lo; t <= t_hi; ++t) {
        const A a = al[(size_t)t * P + i];
        const A e = be[(size_t)(t + 1) * P + j];
        if (a != neg_inf<A>() && e != neg_inf<A>())
          total += exp_acc(a + l + to_acc(mt[(size_t)(t + 1) * P + j]) + e);
      }
      total *= to_acc(grad[b]);
    }
    store(grad_links + idx, total);
  }
}

inline unsigned int grid_for(size_t n) {
  const size_t blocks = (n + kThreads - 1) / kThreads;
  return (unsigned int)(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

}  // namespace

cudaError_t dag_loss_forward(int dtype, const void* match, const void* links, const int64_t* out_len,
                             const int64_t* tgt_len, int B, int T, int P, void* alpha, void* logz,
                             cudaStream_t stream) {
  if (B == 0) return cudaSuccess;
  NAT_DAG_DISPATCH(dtype, {
    const dim3 grid(ceil_div(P, kThreads), B);
    for (int t = 0; t < T; ++t)
      alpha_step_kernel<S, A><<<grid, kThreads, 0, stream>>>(
          static_cast<const S*>(match), static_cast<const S*>(links), out_len, tgt_len, T, P, t,
          static_cast<A*>(alpha));
    logz_kernel<S, A><<<ceil_div(B, kThreads), kThreads, 0, stream>>>(
        static_cast<const A*>(alpha), out_len, tgt_len, B, T, P, static_cast<S*>(logz));
  });
  return cudaGetLastError();
}

cudaError_t dag_loss_backward(int dtype, const void* grad, const void* match, const void* links,
                              const int64_t* out_len, const int64_t* tgt_len, int B, int T, int P,
                              const void* alpha, void* beta, void* grad_match, void* grad_links,
                              cudaStream_t stream) {
  if (B == 0) return cudaSuccess;
  NAT_DAG_DISPATCH(dtype, {
    const dim3 grid(ceil_div(P, kThreads), B);
    for (int t = T - 1; t >= 0; --t)
      beta_step_kernel<S, A><<<grid, kThreads, 0, stream>>>(
          static_cast<const S*>(match), static_cast<const S*>(links), out_len, tgt_len, T, P, t,
          static_cast<A*>(beta));
    grad_match_kernel<S, A><<<grid_for((size_t)B * T * P), kThreads, 0, stream>>>(
        static_cast<const S*>(grad), static_cast<const A*>(alpha), static_cast<const A*>(beta), out_len,
        tgt_len, B, T, P, static_cast<S*>(grad_match));
    grad_links_kernel<S, A><<<grid_for((size_t)B * P * P), kThreads, 0, stream>>>(
        static_cast<const S*>(grad), static_cast<const S*>(match), static_cast<const S*>(links),
        static_cast<const A*>(alpha), static_cast<const A*>(beta), out_len, tgt_len, B, T, P,
        static_cast<S*>(grad_links));
  });
  return cudaGetLastError();
}

}  // namespace nat_dag
