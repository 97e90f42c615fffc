// The cuda backend (issue 17): the whole op set of backend.h on one NVIDIA GPU. Memory is device memory
// (cudaMalloc, host_accessible() false); every op is queued on the backend's one stream, upload and
// download are synchronous, and ops that return a value to the host (cross_entropy, l2_norm) sync.
// Compute: matmuls take bf16-rounded inputs with fp32 accumulation on the tensor cores (cuBLASLt), as
// cpu-bf16 does on the CPU; master weights, gradients, AdamW moments and every other op stay fp32.
// Invariants: no float atomics in any result that is compared bitwise across runs (exact resume is
// tested per backend); reductions run in a fixed order for a given launch shape.
// Files, one per op family: cuda_backend.cu (construction, memory, stream), cuda_linear.cu (dense and
// grouped GEMMs, cuBLASLt), cuda_norm_rope.cu, cuda_attention.cu, cuda_elementwise.cu (swiglu,
// embedding, axpy, sigmoid), cuda_loss.cu (cross entropy), cuda_moe_ops.cu (softmax rows, gather,
// scatter), cuda_moe_routing.cu (routing, jitter, aux/z/Dirichlet losses, shared gate, stats),
// cuda_optimizer.cu (l2_norm, scale, AdamW, expert bias). Only this folder includes CUDA headers. The folder
// builds the shared module libupcycle_backend_cuda.so; the registry reaches the class through the
// module's C entry points (cuda_factory.h), loaded by backend/cuda_module.cpp.
#pragma once

#include <cuda_runtime.h>

#include <memory>

#include "backend/backend.h"

namespace upcycle::backend {

namespace cuda_detail {
struct GemmState;     // cuda_gemm_state.h: cuBLASLt handle, workspace, bf16 scratch (cuda_linear.cu)
struct RoutingState;  // cuda_routing_state.h: scratch of the routing and loss kernels (cuda_moe_routing.cu)
}  // namespace cuda_detail

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device = 0);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;
  std::string_view name() const override { return "cuda"; }

  bool host_accessible() const override { return false; }
  void* allocate(size_t bytes) override;
  void deallocate(void* ptr) noexcept override;
  void fill_zero(void* ptr, size_t bytes) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void synchronize() override;

  void linear_forward(float* y, const float* x, const float* w, const float* b, int64_t M, int64_t K,
                      int64_t N) override;
  void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, int64_t M,
                       int64_t K, int64_t N) override;
  void linear_forward_f32(float* y, const float* x, const float* w, const float* b, int64_t M, int64_t K,
                          int64_t N) override;
  void linear_backward_f32(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                           int64_t M, int64_t K, int64_t N) override;
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t T, int64_t D,
                       float eps) override;
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                        int64_t T, int64_t D) override;
  void rope(float* x, const float* inv_freq, int64_t T, int64_t seq_len, int64_t n_heads, int64_t S,
            int64_t position_offset, RopeDirection direction) override;
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         const AttentionShape& shape) override;
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, const AttentionShape& shape) override;
  void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t past,
                        const AttentionShape& shape) override;
  void swiglu_forward(float* h, const float* g, const float* u, int64_t n) override;
  void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n) override;
  void embedding_forward(float* x, const float* table, const int32_t* ids, int64_t T, int64_t D) override;
  double cross_entropy(float* dlogits, const float* logits, const int32_t* targets, int64_t T, int64_t V,
                       float dloss) override;
  void axpy(float* y, const float* x, float alpha, int64_t n) override;
  void softmax_rows(float* probs, const float* logits, int64_t T, int64_t E) override;
  void softmax_rows_backward(float* dlogits, const float* dprobs, const float* probs, int64_t T, int64_t E) override;
  void sigmoid_forward(float* scores, const float* logits, int64_t n) override;
  void sigmoid_backward(float* dlogits, const float* dscores, const float* scores, int64_t n) override;
  void gather_rows(float* out, const float* x, const int32_t* rows, int64_t A, int64_t T, int64_t D) override;
  void scatter_add_rows(float* y, const float* x, const int32_t* rows, const float* weights, int64_t A, int64_t T,
                        int64_t D) override;
  void scatter_add_rows_backward(float* dx, float* dweights, const float* dy, const float* x, const int32_t* rows,
                                 const float* weights, int64_t A, int64_t T, int64_t D) override;
  void grouped_linear_forward(float* y, const float* x, const float* const* w, const int64_t* offsets, int64_t G,
                              int64_t K, int64_t N) override;
  void grouped_linear_backward(float* dx, float* const* dw, const float* dy, const float* x, const float* const* w,
                               const int64_t* offsets, int64_t G, int64_t K, int64_t N) override;
  void moe_jitter_forward(float* x_noisy, float* noise, const float* x, int64_t n, uint64_t seed,
                          double jitter) override;
  void moe_jitter_backward(float* dx, const float* dx_noisy, const float* noise, int64_t n) override;
  void moe_route(const MoeRouteOut& out, const float* probs_TE, const float* bias_E, const MoeRouteSpec& spec) override;
  void moe_route_backward(float* dprobs_TE, const float* dweight_A, const MoeRouteOut& routing, int64_t kept,
                          const MoeRouteSpec& spec, double aux_coef, const double* dirichlet_dprobs_TE,
                          double dirichlet_coef) override;
  void moe_aux_loss(double* loss, const float* probs_TE, const int64_t* counts_E, int64_t T, int64_t E) override;
  void logsumexp_rows(double* lse_T, const float* x_TE, int64_t T, int64_t E) override;
  void moe_z_loss(double* loss, const double* lse_T, int64_t T) override;
  void moe_z_loss_backward(float* dlogits_TE, const float* probs_TE, const double* lse_T, int64_t T, int64_t E,
                           double coef) override;
  void moe_shared_gate_forward(float* y_TD, const float* ys_TD, const float* sigma_T, int64_t T, int64_t D) override;
  void moe_shared_gate_backward(float* dys_TD, float* dz_T, const float* dy_TD, const float* ys_TD, const float* sigma_T,
                                int64_t T, int64_t D) override;
  void dirichlet_prior_loss(double* loss, double* dprobs_TE, const float* probs_TE, int64_t T, int64_t E,
                            const int32_t* domain_T, const int32_t* prior_of_domain, int64_t domains,
                            const double* alpha_PE, int64_t priors) override;
  void moe_router_stats(double* out, const float* probs_TE, int64_t T, int64_t E, bool normalize_rows) override;

  double l2_norm(const float* x, int64_t n) override;
  void scale(float* x, double factor, int64_t n) override;
  void adamw_step(float* params, float* exp_avg, float* exp_avg_sq, const float* grads, const int64_t* offsets,
                  const uint8_t* decay, int64_t ranges, const AdamWScalars& s) override;
  void expert_bias_update(float* bias, const int64_t* load, int64_t E, double rate) override;

  cudaStream_t stream() const { return stream_; }
  int device() const { return device_; }

 private:
  // Created on first use by the op files that own them; destroyed with the backend.
  cuda_detail::GemmState& gemm_state();
  cuda_detail::RoutingState& routing_state();

  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda_detail::GemmState> gemm_;
  std::unique_ptr<cuda_detail::RoutingState> routing_;
};

}  // namespace upcycle::backend
