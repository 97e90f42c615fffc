// Deterministic column reductions for the cpu backend: out[c] += Σ_r f(r, c) over rows in order,
// in double. Columns are split into fixed blocks, each owned by one thread, so the summation
// order never depends on scheduling, and rows are walked outermost so memory is read contiguously.
#pragma once

#include <algorithm>
#include <cstdint>

namespace upcycle::backend::cpu_detail {

inline constexpr int64_t kColumnBlock = 64;

template <class Term>
void accumulate_column_sums(float* out, int64_t rows, int64_t cols, Term term) {
  const int64_t blocks = (cols + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kColumnBlock, c1 = std::min(cols, c0 + kColumnBlock);
    double acc[kColumnBlock] = {};
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += term(r, c);
    }
    for (int64_t c = c0; c < c1; ++c) out[c] += float(acc[c - c0]);
  }
}

}  // namespace upcycle::backend::cpu_detail
