// Rotary position embedding, HF rotate_half layout, in place on x[T, n_heads, S]. The cos/sin of a
// position's S/2 angles are computed once per call (in double: positions reach 10⁵ and float angles
// would lose the low bits) and applied to every sequence's token at that position and all its heads.
// RopeDirection::kInverse rotates by −angle: the exact transpose, which is the backward pass.
// Non-goals: partial rotary (rotary_dim < S), interleaved (GPT-J) layout.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/op_checks.h"

namespace upcycle::backend {

void CpuBackend::rope(float* x, const float* inv_freq, int64_t T, int64_t seq_len, int64_t n_heads, int64_t S,
                      int64_t position_offset, RopeDirection direction) {
  check_rope_args(T, seq_len, n_heads, S);
  const int64_t half = S / 2;
  // Every sequence of the batch has the same positions, so the angles of the seq_len distinct
  // positions are computed once per call (B times fewer cos/sin than per token; the values are the
  // same, so results are bitwise unchanged) and then applied to every token and head.
  const int64_t positions = std::min(T, seq_len);  // seq_len, or 0 for an empty batch (T is a multiple)
  std::vector<float> cos_table(static_cast<size_t>(positions * half)), sin_table(cos_table.size());
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t p = 0; p < positions; ++p) {
      const double pos = double(p + position_offset);
      for (int64_t i = 0; i < half; ++i) {
        const double angle = (direction == RopeDirection::kInverse ? -pos : pos) * double(inv_freq[i]);
        cos_table[size_t(p * half + i)] = float(std::cos(angle));
        sin_table[size_t(p * half + i)] = float(std::sin(angle));
      }
    }
#pragma omp for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      const float* cos_half = cos_table.data() + (t % seq_len) * half;
      const float* sin_half = sin_table.data() + (t % seq_len) * half;
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
}

}  // namespace upcycle::backend
