// Rotary position embedding, HF rotate_half layout, in place on x[T, n_heads, S]. The cos/sin of a
// token's S/2 angles are computed once (in double: positions reach 10⁵ and float angles would lose
// the low bits) and applied to all its heads. inverse = true rotates by −angle: the exact transpose,
// which is the backward pass. Non-goals: partial rotary (rotary_dim < S), interleaved (GPT-J) layout.
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/op_checks.h"

namespace upcycle::backend {

void CpuBackend::rope(float* x, const float* inv_freq, int64_t T, int64_t seq_len, int64_t n_heads, int64_t S,
                      int64_t position_offset, bool inverse) {
  check_rope_args(T, seq_len, n_heads, S);
  const int64_t half = S / 2;
#pragma omp parallel
  {
    std::vector<float> cos_half(static_cast<size_t>(half)), sin_half(static_cast<size_t>(half));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      const double pos = double(t % seq_len + position_offset);
      for (int64_t i = 0; i < half; ++i) {
        const double angle = (inverse ? -pos : pos) * double(inv_freq[i]);
        cos_half[size_t(i)] = float(std::cos(angle));
        sin_half[size_t(i)] = float(std::sin(angle));
      }
      for (int64_t h = 0; h < n_heads; ++h) {
        float* x_S = x + (t * n_heads + h) * S;
        for (int64_t i = 0; i < half; ++i) {
          const float a = x_S[i], b = x_S[i + half];
          x_S[i] = a * cos_half[size_t(i)] - b * sin_half[size_t(i)];
          x_S[i + half] = b * cos_half[size_t(i)] + a * sin_half[size_t(i)];
        }
      }
    }
  }
}

}  // namespace upcycle::backend
