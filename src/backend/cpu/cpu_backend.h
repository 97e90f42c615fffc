// The cpu backend: OpenBLAS sgemm for the linear layers, OpenMP-parallel loops for everything else,
// one .cpp per op family (linear, norm, rope, attention, elementwise, loss, moe_ops, moe_routing,
// optimizer); memory is host memory (HostMemoryBackend).
// MatmulPrecision::kBF16 ("cpu-bf16") rounds the inputs of linear_* and grouped_linear_* (x, w, dy)
// to bf16 and multiplies them with oneDNN, accumulating in fp32; every other op, the master weights
// and all gradients stay fp32.
// Invariants: results are bitwise reproducible for a fixed thread count (no reduction depends on
// thread scheduling); only files in this folder include cblas.h, dnnl.hpp or omp.h.
// Non-goals: fp16 kernels, bf16 storage of activations, fused ops beyond the contract in backend.h.
#pragma once

#include <memory>
#include <vector>

#include "backend/host_memory.h"
#include "backend/cpu/bf16_gemm.h"

namespace upcycle::backend {

enum class MatmulPrecision { kF32, kBF16 };

class CpuBackend final : public HostMemoryBackend {
 public:
  explicit CpuBackend(MatmulPrecision precision = MatmulPrecision::kF32);
  ~CpuBackend() override;
  std::string_view name() const override { return precision_ == MatmulPrecision::kBF16 ? "cpu-bf16" : "cpu"; }
  MatmulPrecision precision() const { return precision_; }

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
  // MoE routing and losses (ref_moe_routing.cpp / moe_routing.cpp).
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

  // Optimizer (cpu/optimizer.cpp).
  double l2_norm(const float* x, int64_t n) override;
  void scale(float* x, double factor, int64_t n) override;
  void adamw_step(float* params, float* exp_avg, float* exp_avg_sq, const float* grads, const int64_t* offsets,
                  const uint8_t* decay, int64_t ranges, const AdamWScalars& s) override;
  void expert_bias_update(float* bias, const int64_t* load, int64_t E, double rate) override;

 private:
  // Row-major C[M,N] (+)= op(A)·op(B): OpenBLAS sgemm (kF32) or bf16 inputs via oneDNN (kBF16).
  void gemm(MatmulPrecision precision, cpu_detail::Transpose trans_a, cpu_detail::Transpose trans_b, int64_t M,
            int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
            cpu_detail::Accumulate accumulate, float* C, int64_t ldc);
  void linear_forward_in(MatmulPrecision precision, float* y, const float* x, const float* w, const float* b,
                         int64_t M, int64_t K, int64_t N);
  void linear_backward_in(MatmulPrecision precision, float* dx, float* dw, float* db, const float* dy,
                          const float* x, const float* w, int64_t M, int64_t K, int64_t N);

  // rope's cos/sin of the angles of the last (inv_freq, positions, offset) seen, one entry per direction:
  // the 2·L calls of a forward (and of a backward) share one table instead of recomputing it (rope.cpp).
  struct RopeTables {
    std::vector<float> inv_freq, cos, sin;  // inv_freq: the key's values, compared bit for bit
    int64_t positions = -1, position_offset = 0;
  };

  MatmulPrecision precision_;
  std::unique_ptr<cpu_detail::Bf16Gemm> bf16_;  // null for kF32
  RopeTables rope_tables_[2];                    // [RopeDirection::kForward], [kInverse]
};

}  // namespace upcycle::backend
