// Reference kernels of the MoE data-path ops (softmax over rows, sigmoid, row gather/scatter, grouped
// linear), templated on the storage scalar (ref_kernels.h): plain per-row and per-expert loops, every
// sum in double and rounded to Real once. They are the oracle the cpu kernels and the MoE layer tests
// compare against; the double instantiation serves the finite-difference tests.
// Invariant: forward ops overwrite, backward ops accumulate (+=), as backend.h states.
// Non-goal: speed.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/op_checks.h"
#include "backend/ref/ref_kernels.h"

namespace upcycle::backend::ref {

template <typename Real>
void softmax_rows(Real* probs, const Real* logits, int64_t T, int64_t E) {
  for (int64_t t = 0; t < T; ++t) {
    const Real* l_E = logits + t * E;
    double max_logit = -INFINITY;
    for (int64_t e = 0; e < E; ++e) max_logit = std::max(max_logit, double(l_E[e]));
    double denom = 0.0;
    for (int64_t e = 0; e < E; ++e) denom += std::exp(l_E[e] - max_logit);
    for (int64_t e = 0; e < E; ++e) probs[t * E + e] = Real(std::exp(l_E[e] - max_logit) / denom);
  }
}

// ∂p_i/∂l_j = p_i(δ_ij − p_j), so dl_j = p_j·(dp_j − Σ_i dp_i·p_i).
template <typename Real>
void softmax_rows_backward(Real* dlogits, const Real* dprobs, const Real* probs, int64_t T, int64_t E) {
  for (int64_t t = 0; t < T; ++t) {
    const Real* p_E = probs + t * E;
    const Real* dp_E = dprobs + t * E;
    double dot = 0.0;
    for (int64_t e = 0; e < E; ++e) dot += double(dp_E[e]) * p_E[e];
    for (int64_t e = 0; e < E; ++e) {
      dlogits[t * E + e] = Real(dlogits[t * E + e] + double(p_E[e]) * (double(dp_E[e]) - dot));
    }
  }
}

template <typename Real>
void sigmoid_forward(Real* scores, const Real* logits, int64_t n) {
  for (int64_t i = 0; i < n; ++i) scores[i] = Real(1.0 / (1.0 + std::exp(-double(logits[i]))));
}

// dσ/dz = σ(1 − σ).
template <typename Real>
void sigmoid_backward(Real* dlogits, const Real* dscores, const Real* scores, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    dlogits[i] = Real(dlogits[i] + double(dscores[i]) * double(scores[i]) * (1.0 - double(scores[i])));
}

template <typename Real>
void gather_rows(Real* out, const Real* x, const int32_t* rows, int64_t A, int64_t T, int64_t D) {
  check_rows(rows, A, T);
  for (int64_t a = 0; a < A; ++a) std::copy_n(x + int64_t(rows[a]) * D, D, out + a * D);
}

template <typename Real>
void scatter_add_rows(Real* y, const Real* x, const int32_t* rows, const Real* weights, int64_t A, int64_t T,
                      int64_t D) {
  check_rows(rows, A, T);
  // All contributions to a row are summed in double first (rows repeat), then added to y once.
  std::vector<double> acc(size_t(T * D), 0.0);
  std::vector<bool> touched(size_t(T), false);
  for (int64_t a = 0; a < A; ++a) {
    const double w = weights ? double(weights[a]) : 1.0;
    touched[size_t(rows[a])] = true;
    for (int64_t d = 0; d < D; ++d) acc[size_t(rows[a] * D + d)] += w * x[a * D + d];
  }
  for (int64_t t = 0; t < T; ++t) {
    if (!touched[size_t(t)]) continue;
    for (int64_t d = 0; d < D; ++d) y[t * D + d] = Real(y[t * D + d] + acc[size_t(t * D + d)]);
  }
}

template <typename Real>
void scatter_add_rows_backward(Real* dx, Real* dweights, const Real* dy, const Real* x, const int32_t* rows,
                               const Real* weights, int64_t A, int64_t T, int64_t D) {
  check_rows(rows, A, T);
  for (int64_t a = 0; a < A; ++a) {
    const Real* dy_D = dy + int64_t(rows[a]) * D;
    if (dx) {
      const double w = weights ? double(weights[a]) : 1.0;
      for (int64_t d = 0; d < D; ++d) dx[a * D + d] = Real(dx[a * D + d] + w * dy_D[d]);
    }
    if (dweights) {
      double dot = 0.0;
      for (int64_t d = 0; d < D; ++d) dot += double(dy_D[d]) * x[a * D + d];
      dweights[a] = Real(dweights[a] + dot);
    }
  }
}

// The oracle for grouped matmuls: one expert at a time, one row at a time.
template <typename Real>
void grouped_linear_forward(Real* y, const Real* x, const Real* const* w, const int64_t* offsets, int64_t G, int64_t K,
                            int64_t N) {
  check_group_offsets(offsets, G);
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t a = offsets[g]; a < offsets[g + 1]; ++a) {
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0.0;
        for (int64_t k = 0; k < K; ++k) acc += double(x[a * K + k]) * w[g][n * K + k];
        y[a * N + n] = Real(acc);
      }
    }
  }
}

template <typename Real>
void grouped_linear_backward(Real* dx, Real* const* dw, const Real* dy, const Real* x, const Real* const* w,
                             const int64_t* offsets, int64_t G, int64_t K, int64_t N) {
  check_group_offsets(offsets, G);
  for (int64_t g = 0; g < G; ++g) {
    const int64_t a0 = offsets[g], a1 = offsets[g + 1];
    if (a0 == a1) continue;
    if (dx) {
      for (int64_t a = a0; a < a1; ++a) {
        for (int64_t k = 0; k < K; ++k) {
          double acc = dx[a * K + k];
          for (int64_t n = 0; n < N; ++n) acc += double(dy[a * N + n]) * w[g][n * K + k];
          dx[a * K + k] = Real(acc);
        }
      }
    }
    Real* dw_NK = dw ? dw[g] : nullptr;
    if (!dw_NK) continue;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t k = 0; k < K; ++k) {
        double acc = dw_NK[n * K + k];
        for (int64_t a = a0; a < a1; ++a) acc += double(dy[a * N + n]) * x[a * K + k];
        dw_NK[n * K + k] = Real(acc);
      }
    }
  }
}

// Explicit instantiations: float for RefBackend, double for the finite-difference tests.
#define UPCYCLE_REF_INSTANTIATE(op)       \
  template decltype(op<float>) op<float>; \
  template decltype(op<double>) op<double>;
UPCYCLE_REF_INSTANTIATE(softmax_rows)
UPCYCLE_REF_INSTANTIATE(softmax_rows_backward)
UPCYCLE_REF_INSTANTIATE(sigmoid_forward)
UPCYCLE_REF_INSTANTIATE(sigmoid_backward)
UPCYCLE_REF_INSTANTIATE(gather_rows)
UPCYCLE_REF_INSTANTIATE(scatter_add_rows)
UPCYCLE_REF_INSTANTIATE(scatter_add_rows_backward)
UPCYCLE_REF_INSTANTIATE(grouped_linear_forward)
UPCYCLE_REF_INSTANTIATE(grouped_linear_backward)
#undef UPCYCLE_REF_INSTANTIATE

}  // namespace upcycle::backend::ref
