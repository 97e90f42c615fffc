// RMSNorm (HF LlamaRMSNorm): y = w ⊙ x · rstd with rstd = 1/sqrt(mean(x²) + eps), rows in parallel.
// Per-row sums run in double (D is up to ~8k, and rstd feeds every output of the row). dw sums over
// rows, so the backward sums it by column blocks (column_sum.h): deterministic, no atomics.
// Non-goal: LayerNorm (no family we support needs it).
#include <cmath>

#include "backend/cpu/column_sum.h"
#include "backend/cpu/cpu_backend.h"

namespace upcycle::backend {

void CpuBackend::rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t T, int64_t D,
                                 float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* x_D = x + t * D;
    float* y_D = y + t * D;
    double sum_sq = 0.0;
    for (int64_t d = 0; d < D; ++d) sum_sq += double(x_D[d]) * x_D[d];
    const float r = float(1.0 / std::sqrt(sum_sq / double(D) + eps));
    rstd[t] = r;
    for (int64_t d = 0; d < D; ++d) y_D[d] = w[d] * (x_D[d] * r);
  }
}

// dx_j = r·(w_j·dy_j − x_j·r²/D · Σ_d dy_d·w_d·x_d); dw_d += Σ_t dy_d·x_d·r.
void CpuBackend::rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                                  const float* rstd, int64_t T, int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* x_D = x + t * D;
    const float* dy_D = dy + t * D;
    float* dx_D = dx + t * D;
    const float r = rstd[t];
    double dot = 0.0;
    for (int64_t d = 0; d < D; ++d) dot += double(dy_D[d]) * w[d] * x_D[d];
    const float coef = float(dot * double(r) * r / double(D));
    for (int64_t d = 0; d < D; ++d) dx_D[d] += r * (w[d] * dy_D[d] - x_D[d] * coef);
  }
  cpu_detail::accumulate_column_sums(dw, T, D, [=](int64_t t, int64_t d) {
    return double(dy[t * D + d]) * x[t * D + d] * rstd[t];
  });
}

}  // namespace upcycle::backend
