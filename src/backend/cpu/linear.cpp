// Linear layers on OpenBLAS: y = x·wᵀ (+b) with w in HF's [out, in] layout, and the two backward
// products accumulated with beta = 1 so callers' residual/gradient buffers simply add up.
// Invariant: no BLAS call sees a zero dimension (OpenBLAS rejects ld < 1). Non-goal: batched or
// strided variants; the model packs tokens of all sequences into M.
#include <cblas.h>

#include <algorithm>

#include "backend/cpu/column_sum.h"
#include "backend/cpu/cpu_backend.h"

namespace upcycle::backend {

void CpuBackend::linear_forward(float* y, const float* x, const float* w, const float* b, int64_t M, int64_t K,
                                int64_t N) {
  if (M == 0 || N == 0) return;
  // The bias is written first and sgemm adds onto it (beta = 1): one pass over y instead of two.
  for (int64_t m = 0; m < M; ++m) {
    if (b) std::copy_n(b, N, y + m * N);
    else std::fill_n(y + m * N, N, 0.0f);
  }
  if (K == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.0f, x, int(K), w, int(K), 1.0f, y,
              int(N));
}

void CpuBackend::linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                                 int64_t M, int64_t K, int64_t N) {
  if (M == 0 || N == 0) return;  // every product is empty (K = 0 leaves only db, handled below)
  if (K > 0 && dx) {
    // dx[M,K] += dy[M,N] · w[N,K]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(K), int(N), 1.0f, dy, int(N), w, int(K), 1.0f,
                dx, int(K));
  }
  if (K > 0 && dw) {
    // dw[N,K] += dyᵀ[N,M] · x[M,K]
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(N), int(K), int(M), 1.0f, dy, int(N), x, int(K), 1.0f,
                dw, int(K));
  }
  if (db) {
    cpu_detail::accumulate_column_sums(db, M, N, [dy, N](int64_t m, int64_t n) { return double(dy[m * N + n]); });
  }
}

}  // namespace upcycle::backend
