// Element-wise and gather/scatter ops: SwiGLU, token embedding, axpy. All are memory-bound loops
// split statically across OpenMP threads. The embedding's backward is scatter_add_rows (moe_ops.cpp).
// Non-goal: other activations (GELU families are not needed yet).
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/vec_exp.h"
#include "backend/op_checks.h"

namespace upcycle::backend {
namespace {

// 1/(1+e^−z): for z ≪ 0, e^−z overflows to +inf and the result is an exact 0, never NaN. vec_exp
// (not std::exp, a scalar libm call) so the loops below vectorise; they are cloned per ISA because
// the build targets generic x86-64. Each thread runs one contiguous chunk: per-element results do
// not depend on the split.
[[gnu::always_inline]] inline float sigmoid(float z) { return 1.0f / (1.0f + cpu_detail::vec_exp(-z)); }

__attribute__((target_clones("avx512f", "avx2", "default"))) void swiglu_forward_chunk(float* h, const float* g,
                                                                                      const float* u, int64_t n) {
#pragma omp simd
  for (int64_t e = 0; e < n; ++e) h[e] = g[e] * sigmoid(g[e]) * u[e];
}

// d silu(z)/dz = σ(z)·(1 + z·(1 − σ(z))).
__attribute__((target_clones("avx512f", "avx2", "default"))) void swiglu_backward_chunk(
    float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n) {
#pragma omp simd
  for (int64_t e = 0; e < n; ++e) {
    const float sig = sigmoid(g[e]);
    dg[e] += dh[e] * u[e] * (sig * (1.0f + g[e] * (1.0f - sig)));
    du[e] += dh[e] * (g[e] * sig);
  }
}

// Runs chunk(e0, len) over [0, n) in pieces of kChunk elements (long enough for vector loops),
// spread over the threads statically.
template <class Chunk>
void for_each_chunk(int64_t n, Chunk chunk) {
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) chunk(c * kChunk, std::min(kChunk, n - c * kChunk));
}

}  // namespace

void CpuBackend::swiglu_forward(float* h, const float* g, const float* u, int64_t n) {
  for_each_chunk(n, [&](int64_t e0, int64_t len) { swiglu_forward_chunk(h + e0, g + e0, u + e0, len); });
}

void CpuBackend::swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n) {
  for_each_chunk(n, [&](int64_t e0, int64_t len) {
    swiglu_backward_chunk(dg + e0, du + e0, dh + e0, g + e0, u + e0, len);
  });
}

void CpuBackend::embedding_forward(float* x, const float* table, const int32_t* ids, int64_t T, int64_t D) {
  check_ids(ids, T);
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) std::copy_n(table + int64_t(ids[t]) * D, D, x + t * D);
}

void CpuBackend::axpy(float* y, const float* x, float alpha, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t e = 0; e < n; ++e) y[e] += alpha * x[e];
}

}  // namespace upcycle::backend
