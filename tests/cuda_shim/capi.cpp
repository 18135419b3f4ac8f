// C entry points over the DAG launchers (dag_launch.h), for ctypes (shim_ext.py).
// The stream argument is ignored by the shim: every launch runs to completion.
#include "dag_launch.h"

extern "C" {

int shim_loss_forward(int dtype, const void* match, const void* links, const int64_t* out_len,
                      const int64_t* tgt_len, int B, int T, int P, double* alpha, void* logz) {
  return nat_dag::dag_loss_forward(dtype, match, links, out_len, tgt_len, B, T, P, alpha, logz, nullptr);
}

int shim_loss_backward(int dtype, const void* grad, const void* match, const void* links, const int64_t* out_len,
                       const int64_t* tgt_len, int B, int T, int P, double* alpha, double* logz, void* grad_match,
                       void* grad_links) {
  return nat_dag::dag_loss_backward(dtype, grad, match, links, out_len, tgt_len, B, T, P, alpha, logz, grad_match,
                                    grad_links, nullptr);
}

int shim_best_alignment(int dtype, const void* match, const void* links, const int64_t* out_len,
                        const int64_t* tgt_len, int B, int T, int P, int32_t* backptr, int64_t* align) {
  return nat_dag::dag_best_alignment(dtype, match, links, out_len, tgt_len, B, T, P, backptr, align, nullptr);
}

int shim_joint_viterbi(int dtype, const void* links, const void* tok, const int64_t* out_len,
                       const int64_t* max_len, int B, int P, int Lmax, double beta, int per_transition,
                       int32_t* backptr, int64_t* vertices, int64_t* lengths, void* scores) {
  return nat_dag::dag_joint_viterbi(dtype, links, tok, out_len, max_len, B, P, Lmax, beta, per_transition, backptr,
                                    vertices, lengths, scores, nullptr);
}

}  // extern "C"
