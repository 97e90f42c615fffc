// exp for float lanes that GCC can vectorise: std::exp is a libm call per element (no vector variant
// without -ffast-math), which made the exp-heavy loops (softmax of attention, SwiGLU's sigmoid)
// several times slower than their memory traffic. Used inside `omp simd` loops of functions compiled
// with target_clones, so each ISA clone gets an inlined vector copy.
// Accuracy: Cephes expf (range reduction by ln 2 in two parts, degree-6 polynomial on
// |r| ≤ ln2/2), ≤ 2 ulp against the correctly rounded result over the normal range; gradual underflow
// to 0 below −103.97 and +inf above 88.72 as std::exp; NaN propagates.
// Invariants: branch-free, a pure function of its argument (no state, no rounding-mode dependence
// beyond round-to-nearest), so results are identical on every call with the same input and clone.
// Non-goals: double precision, errno, exact agreement with libm.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>

namespace upcycle::backend::cpu_detail {

[[gnu::always_inline]] inline float vec_exp(float x) {
  // Clamp first so the integer conversion below never sees NaN or an out-of-range value.
  float xc = x > -104.0f ? x : -104.0f;
  xc = xc < 88.8f ? xc : 88.8f;
  // n = round(x / ln 2) by the 1.5·2²³ trick (exact for |x / ln 2| < 2²²): floorf is a libm call on
  // generic x86-64 and would stop the loop from vectorising. Not folded away: no -ffast-math.
  constexpr float kRound = 12582912.0f;
  const float fx = (xc * 1.44269504088896341f + kRound) - kRound;
  float r = xc - fx * 0.693359375f;                                    // ln 2 = C1 − C2, C1 exact
  r = r + fx * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;  // e^r
  // 2^n as two normal powers of two (n ∈ [−150, 128] splits into halves in [−75, 64]), so that both
  // overflow to inf and gradual underflow to 0 come out of the multiplication itself.
  const int32_t n = int32_t(fx), n1 = n >> 1, n2 = n - n1;
  const float s1 = std::bit_cast<float>(uint32_t(n1 + 127) << 23);
  const float s2 = std::bit_cast<float>(uint32_t(n2 + 127) << 23);
  const float y = p * s1 * s2;
  const float big = x > 88.72283905206835f ? std::numeric_limits<float>::infinity() : y;
  return x != x ? x : big;
}

}  // namespace upcycle::backend::cpu_detail
