// RMSNorm (HF LlamaRMSNorm): y = w ⊙ x · rstd with rstd = 1/sqrt(mean(x²) + eps), rows in parallel.
// Per-row sums run in double (D is up to ~8k, and rstd feeds every output of the row). dw sums over
// rows, so the backward sums it by column blocks (column_sum.h): deterministic, no atomics.
// The per-row sums run kRowGroup rows interleaved, each row still serially in column order: the same
// bits as one loop per row, without every row waiting out the latency of its chain of double adds.
// Non-goal: LayerNorm (no family we support needs it).
#include <algorithm>
#include <cmath>

#include "backend/cpu/column_sum.h"
#include "backend/cpu/cpu_backend.h"

namespace upcycle::backend {

namespace {

constexpr int64_t kRowGroup = 8;

// sums[r] = Σ_d term(r, d) for rows r < n ≤ kRowGroup, each row's sum in increasing d as a plain
// loop would add it; the rows' independent chains interleave.
template <class Term>
void interleaved_row_sums(double* sums, int64_t n, int64_t D, Term term) {
  double acc[kRowGroup] = {};
  for (int64_t d = 0; d < D; ++d) {
    for (int64_t r = 0; r < n; ++r) acc[r] += term(r, d);
  }
  std::copy_n(acc, n, sums);
}

// Runs body(t0, n) over groups of up to kRowGroup consecutive rows of [0, T), statically over threads.
template <class Body>
void for_each_row_group(int64_t T, Body body) {
  const int64_t groups = (T + kRowGroup - 1) / kRowGroup;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; ++g) body(g * kRowGroup, std::min(kRowGroup, T - g * kRowGroup));
}

}  // namespace

void CpuBackend::rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t T, int64_t D,
                                 float eps) {
  for_each_row_group(T, [=](int64_t t0, int64_t n) {
    double sum_sq[kRowGroup];
    interleaved_row_sums(sum_sq, n, D, [=](int64_t r, int64_t d) {
      const float v = x[(t0 + r) * D + d];
      return double(v) * v;
    });
    for (int64_t r = 0; r < n; ++r) {
      const float* x_D = x + (t0 + r) * D;
      float* y_D = y + (t0 + r) * D;
      const float rs = float(1.0 / std::sqrt(sum_sq[r] / double(D) + eps));
      rstd[t0 + r] = rs;
      for (int64_t d = 0; d < D; ++d) y_D[d] = w[d] * (x_D[d] * rs);
    }
  });
}

// dx_j = r·(w_j·dy_j − x_j·r²/D · Σ_d dy_d·w_d·x_d); dw_d += Σ_t dy_d·x_d·r.
void CpuBackend::rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                                  const float* rstd, int64_t T, int64_t D) {
  for_each_row_group(T, [=](int64_t t0, int64_t n) {
    double dot[kRowGroup];
    interleaved_row_sums(dot, n, D, [=](int64_t r, int64_t d) {
      return double(dy[(t0 + r) * D + d]) * w[d] * x[(t0 + r) * D + d];
    });
    for (int64_t r = 0; r < n; ++r) {
      const float* x_D = x + (t0 + r) * D;
      const float* dy_D = dy + (t0 + r) * D;
      float* dx_D = dx + (t0 + r) * D;
      const float rs = rstd[t0 + r];
      const float coef = float(dot[r] * double(rs) * rs / double(D));
      for (int64_t d = 0; d < D; ++d) dx_D[d] += rs * (w[d] * dy_D[d] - x_D[d] * coef);
    }
  });
  cpu_detail::accumulate_column_sums(dw, T, D, [=](int64_t t, int64_t d) {
    return double(dy[t * D + d]) * x[t * D + d] * rstd[t];
  });
}

}  // namespace upcycle::backend
