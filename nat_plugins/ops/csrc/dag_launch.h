// Host-side entry points of the DAG kernels.  Plain C++ with the CUDA runtime
// type cudaStream_t only, so the .cu files never see ATen and the binding never
// sees device code.  Every launcher enqueues on `stream` (PyTorch's current
// stream, passed in by the binding), never synchronises, and returns the launch
// status.  Tensors are dense, contiguous, row-major; lengths are int64 on device.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

namespace nat_dag {

// dtype codes for the storage type of the float tensors.  Accumulators (DP
// scores of alignment and Viterbi, gradients, token log-probs) are double for
// kFloat64 and float otherwise; the likelihood's DP state is always double.
enum DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

// alpha [B,T,P] double <- forward variables; logz [B] (storage) <- log-likelihood.
cudaError_t dag_loss_forward(int dtype, const void* match, const void* links, const int64_t* out_len,
                             const int64_t* tgt_len, int B, int T, int P, double* alpha, void* logz,
                             cudaStream_t stream);

// grad [B] (storage); alpha [B,T,P] from the forward, overwritten (by beta); logz
// [B] double scratch; grad_match [B,T,P] and grad_links [B,P,P] in the accumulator
// type, grad_links zero-filled by the caller.
cudaError_t dag_loss_backward(int dtype, const void* grad, const void* match, const void* links,
                              const int64_t* out_len, const int64_t* tgt_len, int B, int T, int P,
                              double* alpha, double* logz, void* grad_match, void* grad_links,
                              cudaStream_t stream);

// backptr [B,T,P] int32 scratch; align [B,P] int64 output.
cudaError_t dag_best_alignment(int dtype, const void* match, const void* links, const int64_t* out_len,
                               const int64_t* tgt_len, int B, int T, int P, int32_t* backptr,
                               int64_t* align, cudaStream_t stream);

// token_logprobs [B,P] in the accumulator type, may be null (zeros).  max_len [B]
// int64 with 1 <= max_len <= out_len.  per_transition: divide by the number of
// transitions (at least 1) instead of vertices.  backptr [B,Lmax,P] int32 scratch;
// vertices [B,Lmax] int64, lengths [B] int64, scores [B] (storage).
cudaError_t dag_joint_viterbi(int dtype, const void* links, const void* token_logprobs,
                              const int64_t* out_len, const int64_t* max_len, int B, int P, int Lmax,
                              double beta, int per_transition, int32_t* backptr, int64_t* vertices,
                              int64_t* lengths, void* scores, cudaStream_t stream);

}  // namespace nat_dag
