// Thin PyTorch binding for the DAG kernels: checks tensors, allocates outputs,
// and hands raw pointers plus PyTorch's *current* CUDA stream to the launchers
// in dag_launch.h.  All numerical work lives in the .cu files.
#include <torch/extension.h>
// c10's stream header, not <ATen/cuda/CUDAContext.h>: that one pulls in the cuBLAS,
// cuSPARSE and cuSOLVER headers, which a compiler-and-runtime-only toolkit lacks.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "dag_launch.h"

namespace {

int dtype_code(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return nat_dag::kFloat32;
    case at::kDouble: return nat_dag::kFloat64;
    case at::kHalf: return nat_dag::kFloat16;
    case at::kBFloat16: return nat_dag::kBFloat16;
    default: TORCH_CHECK(false, "nat_plugins DAG ops: unsupported dtype ", t.scalar_type());
  }
  return -1;
}

at::ScalarType acc_type(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

void check_cuda(const at::Tensor& t, const char* name, const at::Tensor& ref) {
  TORCH_CHECK(t.is_cuda(), "nat_plugins DAG ops: ", name, " must be a CUDA tensor");
  TORCH_CHECK(t.device() == ref.device(), "nat_plugins DAG ops: ", name, " is on ", t.device(),
              " but the other inputs are on ", ref.device());
  TORCH_CHECK(t.is_contiguous(), "nat_plugins DAG ops: ", name, " must be contiguous");
}

void check_lengths(const at::Tensor& t, const char* name, const at::Tensor& ref) {
  check_cuda(t, name, ref);
  TORCH_CHECK(t.scalar_type() == at::kLong, "nat_plugins DAG ops: ", name, " must be int64");
}

void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, "nat_plugins DAG ops: ", op, " kernel launch failed: ",
              cudaGetErrorString(err));
}

std::vector<at::Tensor> loss_forward(const at::Tensor& match, const at::Tensor& links,
                                     const at::Tensor& out_len, const at::Tensor& tgt_len) {
  check_cuda(match, "match", match);
  check_cuda(links, "links", match);
  check_lengths(out_len, "output_length", match);
  check_lengths(tgt_len, "target_length", match);
  TORCH_CHECK(links.scalar_type() == match.scalar_type(), "match and links must share a dtype");
  const c10::cuda::CUDAGuard guard(match.device());
  const int B = match.size(0), T = match.size(1), P = match.size(2);
  auto alpha = at::empty({B, T, P}, match.options().dtype(at::kDouble));
  auto logz = at::empty({B}, match.options());
  check_launch(nat_dag::dag_loss_forward(dtype_code(match), match.data_ptr(), links.data_ptr(),
                                         out_len.data_ptr<int64_t>(), tgt_len.data_ptr<int64_t>(), B, T, P,
                                         alpha.data_ptr<double>(), logz.data_ptr(),
                                         c10::cuda::getCurrentCUDAStream()),
               "dag_loss_forward");
  return {logz, alpha};
}

// Gradients come back in the accumulator dtype (float for half/bfloat16 inputs).
// `alpha` is consumed: the sweep overwrites it with beta (see dag_loss.cu).
std::vector<at::Tensor> loss_backward(const at::Tensor& grad, const at::Tensor& match, const at::Tensor& links,
                                      const at::Tensor& out_len, const at::Tensor& tgt_len,
                                      at::Tensor& alpha) {
  check_cuda(grad, "grad", match);
  check_cuda(match, "match", match);
  check_cuda(links, "links", match);
  check_cuda(alpha, "alpha", match);
  check_lengths(out_len, "output_length", match);
  check_lengths(tgt_len, "target_length", match);
  TORCH_CHECK(grad.scalar_type() == match.scalar_type() && links.scalar_type() == match.scalar_type(),
              "grad, match and links must share a dtype");
  TORCH_CHECK(alpha.scalar_type() == at::kDouble, "alpha must be float64");
  const c10::cuda::CUDAGuard guard(match.device());
  const int B = match.size(0), T = match.size(1), P = match.size(2);
  auto logz = at::empty({B}, alpha.options());
  auto grad_match = at::empty({B, T, P}, match.options().dtype(acc_type(match)));
  auto grad_links = at::zeros({B, P, P}, match.options().dtype(acc_type(match)));
  check_launch(nat_dag::dag_loss_backward(dtype_code(match), grad.data_ptr(), match.data_ptr(), links.data_ptr(),
                                          out_len.data_ptr<int64_t>(), tgt_len.data_ptr<int64_t>(), B, T, P,
                                          alpha.data_ptr<double>(), logz.data_ptr<double>(),
                                          grad_match.data_ptr(), grad_links.data_ptr(),
                                          c10::cuda::getCurrentCUDAStream()),
               "dag_loss_backward");
  return {grad_match, grad_links};
}

at::Tensor best_alignment(const at::Tensor& match, const at::Tensor& links, const at::Tensor& out_len,
                          const at::Tensor& tgt_len) {
  check_cuda(match, "match", match);
  check_cuda(links, "links", match);
  check_lengths(out_len, "output_length", match);
  check_lengths(tgt_len, "target_length", match);
  TORCH_CHECK(links.scalar_type() == match.scalar_type(), "match and links must share a dtype");
  const c10::cuda::CUDAGuard guard(match.device());
  const int B = match.size(0), T = match.size(1), P = match.size(2);
  auto backptr = at::empty({B, T, P}, match.options().dtype(at::kInt));
  auto align = at::empty({B, P}, match.options().dtype(at::kLong));
  check_launch(nat_dag::dag_best_alignment(dtype_code(match), match.data_ptr(), links.data_ptr(),
                                           out_len.data_ptr<int64_t>(), tgt_len.data_ptr<int64_t>(), B, T, P,
                                           backptr.data_ptr<int32_t>(), align.data_ptr<int64_t>(),
                                           c10::cuda::getCurrentCUDAStream()),
               "dag_best_alignment");
  return align;
}

std::vector<at::Tensor> joint_viterbi(const at::Tensor& links, const std::optional<at::Tensor>& token_logprobs,
                                      const at::Tensor& out_len, const at::Tensor& max_len, int64_t Lmax,
                                      double beta, bool per_transition) {
  check_cuda(links, "links", links);
  check_lengths(out_len, "output_length", links);
  check_lengths(max_len, "max_length", links);
  const void* tok = nullptr;
  if (token_logprobs.has_value()) {
    check_cuda(*token_logprobs, "token_logprobs", links);
    // The accumulator type, as the reference: fp16 links must not round the token scores.
    TORCH_CHECK(token_logprobs->scalar_type() == acc_type(links),
                "token_logprobs must be float32 (float64 for float64 links)");
    tok = token_logprobs->data_ptr();
  }
  const c10::cuda::CUDAGuard guard(links.device());
  const int B = links.size(0), P = links.size(1);
  auto backptr = at::empty({B, Lmax, P}, links.options().dtype(at::kInt));
  auto vertices = at::empty({B, Lmax}, links.options().dtype(at::kLong));
  auto lengths = at::empty({B}, links.options().dtype(at::kLong));
  auto scores = at::empty({B}, links.options());
  check_launch(nat_dag::dag_joint_viterbi(dtype_code(links), links.data_ptr(), tok, out_len.data_ptr<int64_t>(),
                                          max_len.data_ptr<int64_t>(), B, P, (int)Lmax, beta,
                                          per_transition ? 1 : 0, backptr.data_ptr<int32_t>(),
                                          vertices.data_ptr<int64_t>(), lengths.data_ptr<int64_t>(),
                                          scores.data_ptr(), c10::cuda::getCurrentCUDAStream()),
               "dag_joint_viterbi");
  return {vertices, lengths, scores};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "nat_plugins DAG dynamic programs (DA-Transformer loss, best alignment, joint-Viterbi)";
  m.def("loss_forward", &loss_forward, "DAG log-likelihood forward -> (logz [B], alpha [B,T,P] float64)");
  m.def("loss_backward", &loss_backward, "DAG log-likelihood backward -> (grad_match, grad_links)");
  m.def("best_alignment", &best_alignment, "DAG best alignment -> [B,P] int64");
  m.def("joint_viterbi", &joint_viterbi, "joint-Viterbi -> (vertices [B,L], lengths [B], scores [B])");
}
