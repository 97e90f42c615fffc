// Linear layers: y = x·wᵀ (+b) with w in HF's [out, in] layout, and the two backward products
// accumulated (beta = 1) so callers' residual/gradient buffers simply add up. Every product goes
// through CpuBackend::gemm, which is OpenBLAS sgemm (kF32) or bf16-input/fp32-accumulate oneDNN (kBF16);
// under kBF16 the two backward products go through Bf16Gemm::linear_backward, which rounds dy once.
// Invariant: no BLAS call sees a zero dimension (OpenBLAS rejects ld < 1). Non-goal: batched or
// strided variants; the model packs tokens of all sequences into M.
#include <cblas.h>

#include <algorithm>

#include "backend/cpu/column_sum.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace upcycle::backend {

using cpu_detail::Accumulate;
using cpu_detail::Transpose;

CpuBackend::CpuBackend(MatmulPrecision precision) : precision_(precision) {
  if (precision_ == MatmulPrecision::kBF16) bf16_ = std::make_unique<cpu_detail::Bf16Gemm>();
}

CpuBackend::~CpuBackend() = default;

void CpuBackend::gemm(MatmulPrecision precision, Transpose trans_a, Transpose trans_b, int64_t M, int64_t N,
                      int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, Accumulate accumulate,
                      float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (precision == MatmulPrecision::kBF16) {
    UPCYCLE_CHECK(bf16_ != nullptr, "bf16 gemm on a backend built for fp32");
    return bf16_->run(trans_a, trans_b, M, N, K, A, lda, B, ldb, accumulate, C, ldc);
  }
  if (K == 0) {  // OpenBLAS rejects ld < 1; an empty inner product is 0
    if (accumulate == Accumulate::kOverwrite)
      for (int64_t m = 0; m < M; ++m) std::fill_n(C + m * ldc, N, 0.0f);
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a == Transpose::kYes ? CblasTrans : CblasNoTrans,
              trans_b == Transpose::kYes ? CblasTrans : CblasNoTrans, int(M), int(N), int(K), 1.0f, A, int(lda), B,
              int(ldb), accumulate == Accumulate::kAdd ? 1.0f : 0.0f, C, int(ldc));
}

void CpuBackend::linear_forward_in(MatmulPrecision precision, float* y, const float* x, const float* w,
                                   const float* b, int64_t M, int64_t K, int64_t N) {
  if (M == 0 || N == 0) return;
  // The bias is written first and the product adds onto it (beta = 1): one pass over y instead of two.
  for (int64_t m = 0; m < M; ++m) {
    if (b) std::copy_n(b, N, y + m * N);
    else std::fill_n(y + m * N, N, 0.0f);
  }
  gemm(precision, Transpose::kNo, Transpose::kYes, M, N, K, x, K, w, K, Accumulate::kAdd, y, N);
}

// db sums the fp32 dy in both precisions: only matmul inputs are rounded.
void CpuBackend::linear_backward_in(MatmulPrecision precision, float* dx, float* dw, float* db, const float* dy,
                                    const float* x, const float* w, int64_t M, int64_t K, int64_t N) {
  if (M == 0 || N == 0) return;  // every product is empty (K = 0 leaves only db, handled below)
  if (K > 0 && precision == MatmulPrecision::kBF16) {
    UPCYCLE_CHECK(bf16_ != nullptr, "bf16 gemm on a backend built for fp32");
    bf16_->linear_backward(dx, dw, dy, x, w, M, K, N);  // the two products below, dy rounded once
  } else if (K > 0) {
    if (dx)  // dx[M,K] += dy[M,N] · w[N,K]
      gemm(precision, Transpose::kNo, Transpose::kNo, M, K, N, dy, N, w, K, Accumulate::kAdd, dx, K);
    if (dw)  // dw[N,K] += dyᵀ[N,M] · x[M,K]
      gemm(precision, Transpose::kYes, Transpose::kNo, N, K, M, dy, N, x, K, Accumulate::kAdd, dw, K);
  }
  if (db) {
    cpu_detail::accumulate_column_sums(db, M, N, [dy, N](int64_t m, int64_t n) { return double(dy[m * N + n]); });
  }
}

void CpuBackend::linear_forward(float* y, const float* x, const float* w, const float* b, int64_t M, int64_t K,
                                int64_t N) {
  linear_forward_in(precision_, y, x, w, b, M, K, N);
}

void CpuBackend::linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                                 int64_t M, int64_t K, int64_t N) {
  linear_backward_in(precision_, dx, dw, db, dy, x, w, M, K, N);
}

void CpuBackend::linear_forward_f32(float* y, const float* x, const float* w, const float* b, int64_t M, int64_t K,
                                    int64_t N) {
  linear_forward_in(MatmulPrecision::kF32, y, x, w, b, M, K, N);
}

void CpuBackend::linear_backward_f32(float* dx, float* dw, float* db, const float* dy, const float* x,
                                     const float* w, int64_t M, int64_t K, int64_t N) {
  linear_backward_in(MatmulPrecision::kF32, dx, dw, db, dy, x, w, M, K, N);
}

}  // namespace upcycle::backend
