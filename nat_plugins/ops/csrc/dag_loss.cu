// DA-Transformer log-likelihood, forward and backward (Huang et al., ICML 2022, §2.2-2.3).
//
// Forward, one launch per step t (the steps are sequential; each launch is
// fully parallel over sentences and vertices):
//   alpha[b,t,j] = logsumexp_{i<j} (alpha[b,t-1,i] + links[b,i,j]) + match[b,t,j]
// Backward, one launch per step t = T-1 .. 0, by the mirror recursion
//   beta[b,t,i] = logsumexp_{j>i} (links[b,i,j] + match[b,t+1,j] + beta[b,t+1,j]),
// and, in the same launch, the posteriors of that step:
//   d/d match[b,t,i]  = exp(alpha[t,i] + beta[t,i] - logZ)
//   d/d links[b,i,j] += exp(alpha[t,i] + links[i,j] + match[t+1,j] + beta[t+1,j] - logZ)
// (each term of the link sum is a term of beta's logsumexp, so it costs one
// exp more).  Only cells in the band of complete paths (t <= j <= P_b - T_b + t)
// are ever computed; the rest hold -inf, so padding in the inputs is never read.
//
// Precision and memory.  alpha and beta reach thousands of nats (T=256 steps of
// ~-7 each), where a float's spacing is ~1e-4, and the posteriors exp(alpha +
// beta - logZ) would carry ~1e-3 relative errors.  So the DP state is double
// whatever the input dtype: alpha [B,T,P] doubles (the 2*B*T*P floats of
// memory the design allows), and the backward sweep overwrites row t of alpha
// with beta once step t has used it (no other step reads alpha[t]), taking the
// gradients as it goes; so a second backward through the same forward is
// impossible (dag_cuda.py refuses it).  Gradients accumulate in the
// accumulator type (float for half/bfloat16/float, double for double).

#include "dag_common.cuh"

namespace nat_dag {
namespace {

constexpr int kThreads = 256;

template <typename S>
__global__ void alpha_step_kernel(const S* __restrict__ match, const S* __restrict__ links,
                                  const int64_t* __restrict__ out_len, const int64_t* __restrict__ tgt_len,
                                  int T, int P, int t, double* __restrict__ alpha) {
  const int b = blockIdx.y;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= P) return;
  const int Pb = (int)out_len[b], Tb = (int)tgt_len[b];
  double* al = alpha + (size_t)b * T * P;
  double val = neg_inf<double>();
  if (t < Tb && j >= t && j <= Pb - Tb + t) {
    if (t == 0) {
      if (j == 0) val = (double)to_acc(match[(size_t)b * T * P]);
    } else {
      // Threads of a warp share i and read consecutive j: coalesced rows of links.
      const S* lk = links + (size_t)b * P * P;
      const double* prev = al + (size_t)(t - 1) * P;
      LogSumExp<double> acc;
      for (int i = t - 1; i < j; ++i) {
        const double a = prev[i];
        if (a != neg_inf<double>()) acc.add(a + (double)to_acc(lk[(size_t)i * P + j]));
      }
      val = acc.result() + (double)to_acc(match[((size_t)b * T + t) * P + j]);
    }
  }
  al[(size_t)t * P + j] = val;
}

__device__ __forceinline__ double sentence_logz(const double* alpha, const int64_t* out_len,
                                                const int64_t* tgt_len, int b, int T, int P) {
  return alpha[((size_t)b * T + (tgt_len[b] - 1)) * P + (out_len[b] - 1)];
}

template <typename S, typename A>
__global__ void logz_kernel(const double* __restrict__ alpha, const int64_t* __restrict__ out_len,
                            const int64_t* __restrict__ tgt_len, int B, int T, int P, S* __restrict__ logz) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= B) return;
  store(logz + b, (A)sentence_logz(alpha, out_len, tgt_len, b, T, P));
}

__global__ void gather_logz_kernel(const double* __restrict__ alpha, const int64_t* __restrict__ out_len,
                                   const int64_t* __restrict__ tgt_len, int B, int T, int P,
                                   double* __restrict__ logz) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b < B) logz[b] = sentence_logz(alpha, out_len, tgt_len, b, T, P);
}

// Step t of the backward sweep.  ab [B,T,P]: rows > t hold beta, rows <= t alpha;
// thread i reads alpha[t,i], writes beta[t,i] over it, writes grad_match[b,t,i]
// and adds step t's transitions into row i of grad_links (zero-initialised by
// the caller; thread i owns row i).
template <typename S, typename A>
__global__ void backward_step_kernel(const S* __restrict__ grad, const S* __restrict__ match,
                                     const S* __restrict__ links, const double* __restrict__ logz_all,
                                     const int64_t* __restrict__ out_len, const int64_t* __restrict__ tgt_len,
                                     int T, int P, int t, double* __restrict__ ab, A* __restrict__ grad_match,
                                     A* __restrict__ grad_links) {
  const int b = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= P) return;
  const int Pb = (int)out_len[b], Tb = (int)tgt_len[b];
  const double logz = logz_all[b];
  // A sentence without a usable path (-inf or NaN likelihood) gets zero gradients.
  const bool live = logz == logz && logz != neg_inf<double>();
  const double g = live ? (double)to_acc(grad[b]) : 0.0;
  double* cell = ab + ((size_t)b * T + t) * P + i;
  const double a = *cell;  // alpha[t,i]
  double val = neg_inf<double>();
  if (t < Tb && i >= t && i <= Pb - Tb + t) {
    if (t == Tb - 1) {
      if (i == Pb - 1) val = 0.0;
    } else {
      const double* next = ab + ((size_t)b * T + t + 1) * P;  // beta[t+1]
      const S* lk = links + ((size_t)b * P + i) * P;
      const S* mt = match + ((size_t)b * T + t + 1) * P;
      A* gl = grad_links + ((size_t)b * P + i) * P;
      const double head = a - logz;  // alpha[t,i] - logZ: the posterior's prefix
      const bool add_grad = live && a != neg_inf<double>();
      const int j_hi = Pb - Tb + t + 1;  // last vertex that can be step t+1
      LogSumExp<double> acc;
      for (int j = i + 1; j <= j_hi; ++j) {
        const double n = next[j];
        if (n == neg_inf<double>()) continue;
        const double x = n + (double)to_acc(lk[j]) + (double)to_acc(mt[j]);
        acc.add(x);
        if (add_grad) gl[j] += (A)(g * exp(head + x));
      }
      val = acc.result();
    }
  }
  *cell = val;
  A gm = A(0);
  if (live && a != neg_inf<double>() && val != neg_inf<double>()) gm = (A)(g * exp(a + val - logz));
  grad_match[((size_t)b * T + t) * P + i] = gm;
}

}  // namespace

cudaError_t dag_loss_forward(int dtype, const void* match, const void* links, const int64_t* out_len,
                             const int64_t* tgt_len, int B, int T, int P, double* alpha, void* logz,
                             cudaStream_t stream) {
  if (B == 0) return cudaSuccess;
  NAT_DAG_DISPATCH(dtype, {
    const dim3 grid(ceil_div(P, kThreads), B);
    for (int t = 0; t < T; ++t)
      alpha_step_kernel<S><<<grid, kThreads, 0, stream>>>(
          static_cast<const S*>(match), static_cast<const S*>(links), out_len, tgt_len, T, P, t, alpha);
    logz_kernel<S, A><<<ceil_div(B, kThreads), kThreads, 0, stream>>>(alpha, out_len, tgt_len, B, T, P,
                                                                      static_cast<S*>(logz));
  });
  return cudaGetLastError();
}

cudaError_t dag_loss_backward(int dtype, const void* grad, const void* match, const void* links,
                              const int64_t* out_len, const int64_t* tgt_len, int B, int T, int P,
                              double* alpha, double* logz, void* grad_match, void* grad_links,
                              cudaStream_t stream) {
  if (B == 0) return cudaSuccess;
  gather_logz_kernel<<<ceil_div(B, kThreads), kThreads, 0, stream>>>(alpha, out_len, tgt_len, B, T, P, logz);
  NAT_DAG_DISPATCH(dtype, {
    const dim3 grid(ceil_div(P, kThreads), B);
    for (int t = T - 1; t >= 0; --t)
      backward_step_kernel<S, A><<<grid, kThreads, 0, stream>>>(
          static_cast<const S*>(grad), static_cast<const S*>(match), static_cast<const S*>(links), logz,
          out_len, tgt_len, T, P, t, alpha, static_cast<A*>(grad_match), static_cast<A*>(grad_links));
  });
  return cudaGetLastError();
}

}  // namespace nat_dag
