// Rotary position embedding, HF rotate_half layout, in place on x[T, n_heads, S]. The cos/sin of a
// position's S/2 angles are computed once per call (in double: positions reach 10⁵ and float angles
// would lose the low bits) and applied to every sequence's token at that position and all its heads.
// RopeDirection::kInverse rotates by −angle: the exact transpose, which is the backward pass.
// Non-goals: partial rotary (rotary_dim < S), interleaved (GPT-J) layout.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/op_checks.h"

namespace upcycle::backend {

void CpuBackend::rope(float* x, const float* inv_freq, int64_t T, int64_t seq_len, int64_t n_heads, int64_t S,
                      int64_t position_offset, RopeDirection direction) {
  check_rope_args(T, seq_len, n_heads, S);
  const int64_t half = S / 2;
  // Every sequence of the batch has the same positions, so the angles of the seq_len distinct
  // positions are computed once (B times fewer cos/sin than per token; the values are the same, so
  // results are bitwise unchanged) and kept for the next call with the same key, then applied to every
  // token and head.
  const int64_t positions = std::min(T, seq_len);  // seq_len, or 0 for an empty batch (T is a multiple)
  RopeTables& tables = rope_tables_[direction == RopeDirection::kInverse ? 1 : 0];
  const bool cached = tables.positions == positions && tables.position_offset == position_offset &&
                      int64_t(tables.inv_freq.size()) == half &&
                      std::memcmp(tables.inv_freq.data(), inv_freq, size_t(half) * sizeof(float)) == 0;
  if (!cached) {
    tables.positions = -1;  // invalid until filled
    tables.inv_freq.assign(inv_freq, inv_freq + half);
    tables.cos.resize(static_cast<size_t>(positions * half));
    tables.sin.resize(tables.cos.size());
    float* cos_table = tables.cos.data();
    float* sin_table = tables.sin.data();
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < positions; ++p) {
      const double pos = double(p + position_offset);
      for (int64_t i = 0; i < half; ++i) {
        const double angle = (direction == RopeDirection::kInverse ? -pos : pos) * double(inv_freq[i]);
        cos_table[p * half + i] = float(std::cos(angle));
        sin_table[p * half + i] = float(std::sin(angle));
      }
    }
    tables.positions = positions, tables.position_offset = position_offset;
  }
  const float* cos_table = tables.cos.data();
  const float* sin_table = tables.sin.data();
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* cos_half = cos_table + (t % seq_len) * half;
    const float* sin_half = sin_table + (t % seq_len) * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* x_S = x + (t * n_heads + h) * S;
      for (int64_t i = 0; i < half; ++i) {
        const float a = x_S[i], b = x_S[i + half];
        x_S[i] = a * cos_half[i] - b * sin_half[i];
        x_S[i + half] = b * cos_half[i] + a * sin_half[i];
      }
    }
  }
}

}  // namespace upcycle::backend
