// MoE data-path ops on the cpu: row softmax, sigmoid scores, row gather/scatter, and grouped linear layers as one
// CpuBackend::gemm (sgemm, or bf16 under MatmulPrecision::kBF16) per non-empty expert group (the
// groups are contiguous row ranges after the router sorts assignments by expert, so no copies are needed).
// Invariants: deterministic for a fixed thread count. scatter_add_rows may hit one destination row from
// several assignments, so it is split by column blocks and every thread walks the assignments in
// increasing order: no two threads write the same element and the summation order is fixed.
// Non-goals: fused gather+matmul, batched BLAS calls.
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/op_checks.h"

namespace upcycle::backend {

using cpu_detail::Accumulate;
using cpu_detail::Transpose;

void CpuBackend::softmax_rows(float* probs, const float* logits, int64_t T, int64_t E) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* l_E = logits + t * E;
    float* p_E = probs + t * E;
    float max_logit = -INFINITY;
    for (int64_t e = 0; e < E; ++e) max_logit = std::max(max_logit, l_E[e]);
    double denom = 0.0;
    for (int64_t e = 0; e < E; ++e) {
      p_E[e] = std::exp(l_E[e] - max_logit);
      denom += p_E[e];
    }
    const float inv = float(1.0 / denom);
    for (int64_t e = 0; e < E; ++e) p_E[e] *= inv;
  }
}

void CpuBackend::softmax_rows_backward(float* dlogits, const float* dprobs, const float* probs, int64_t T,
                                       int64_t E) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* p_E = probs + t * E;
    const float* dp_E = dprobs + t * E;
    double dot = 0.0;
    for (int64_t e = 0; e < E; ++e) dot += double(dp_E[e]) * p_E[e];
    for (int64_t e = 0; e < E; ++e) dlogits[t * E + e] += p_E[e] * (dp_E[e] - float(dot));
  }
}

// Router scores: T·E values, so exact std::exp in double (not vec_exp) costs nothing and keeps the
// top-k choice identical to the ref backend's.
void CpuBackend::sigmoid_forward(float* scores, const float* logits, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) scores[i] = float(1.0 / (1.0 + std::exp(-double(logits[i]))));
}

void CpuBackend::sigmoid_backward(float* dlogits, const float* dscores, const float* scores, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dlogits[i] += float(double(dscores[i]) * scores[i] * (1.0 - double(scores[i])));
}

void CpuBackend::gather_rows(float* out, const float* x, const int32_t* rows, int64_t A, int64_t T, int64_t D) {
  check_rows(rows, A, T);
#pragma omp parallel for schedule(static)
  for (int64_t a = 0; a < A; ++a) std::copy_n(x + int64_t(rows[a]) * D, D, out + a * D);
}

void CpuBackend::scatter_add_rows(float* y, const float* x, const int32_t* rows, const float* weights, int64_t A,
                                  int64_t T, int64_t D) {
  check_rows(rows, A, T);
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (D + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t d0 = blk * kBlock, d1 = std::min(D, d0 + kBlock);
    for (int64_t a = 0; a < A; ++a) {
      const float w = weights ? weights[a] : 1.0f;
      float* y_row = y + int64_t(rows[a]) * D;
      const float* x_row = x + a * D;
      for (int64_t d = d0; d < d1; ++d) y_row[d] += w * x_row[d];
    }
  }
}

void CpuBackend::scatter_add_rows_backward(float* dx, float* dweights, const float* dy, const float* x,
                                           const int32_t* rows, const float* weights, int64_t A, int64_t T,
                                           int64_t D) {
  check_rows(rows, A, T);
  // Each assignment owns its dx row and dweights entry: a plain parallel loop is race-free.
#pragma omp parallel for schedule(static)
  for (int64_t a = 0; a < A; ++a) {
    const float* dy_D = dy + int64_t(rows[a]) * D;
    if (dx) {
      const float w = weights ? weights[a] : 1.0f;
      for (int64_t d = 0; d < D; ++d) dx[a * D + d] += w * dy_D[d];
    }
    if (dweights) {
      double dot = 0.0;
      for (int64_t d = 0; d < D; ++d) dot += double(dy_D[d]) * x[a * D + d];
      dweights[a] += float(dot);
    }
  }
}

// Threads come from the GEMM library inside each product; groups run one after another so the result
// of a group never depends on how many others exist.
void CpuBackend::grouped_linear_forward(float* y, const float* x, const float* const* w, const int64_t* offsets,
                                        int64_t G, int64_t K, int64_t N) {
  check_group_offsets(offsets, G);
  if (N == 0) return;
  for (int64_t g = 0; g < G; ++g) {
    const int64_t rows = offsets[g + 1] - offsets[g];
    if (rows == 0) continue;
    gemm(precision_, Transpose::kNo, Transpose::kYes, rows, N, K, x + offsets[g] * K, K, w[g], K,
         Accumulate::kOverwrite, y + offsets[g] * N, N);
  }
}

void CpuBackend::grouped_linear_backward(float* dx, float* const* dw, const float* dy, const float* x,
                                         const float* const* w, const int64_t* offsets, int64_t G, int64_t K,
                                         int64_t N) {
  check_group_offsets(offsets, G);
  if (K == 0 || N == 0) return;  // every product is empty
  for (int64_t g = 0; g < G; ++g) {
    const int64_t rows = offsets[g + 1] - offsets[g];
    if (rows == 0) continue;
    const float* dy_g = dy + offsets[g] * N;
    float* dw_g = dw ? dw[g] : nullptr;
    if (precision_ == MatmulPrecision::kBF16) {  // both products below, dy_g rounded once
      bf16_->linear_backward(dx ? dx + offsets[g] * K : nullptr, dw_g, dy_g, x + offsets[g] * K, w[g], rows, K, N);
      continue;
    }
    if (dx) {  // dx_g[rows,K] += dy_g[rows,N] · w[g][N,K]
      gemm(precision_, Transpose::kNo, Transpose::kNo, rows, K, N, dy_g, N, w[g], K, Accumulate::kAdd,
           dx + offsets[g] * K, K);
    }
    if (dw_g) {  // dw[g][N,K] += dy_gᵀ[N,rows] · x_g[rows,K]
      gemm(precision_, Transpose::kYes, Transpose::kNo, N, K, rows, dy_g, N, x + offsets[g] * K, K,
           Accumulate::kAdd, dw_g, K);
    }
  }
}

}  // namespace upcycle::backend
