// Normal stream v2 kernels (see normal_v2.h). One loop, compiled three times (portable, AVX2+FMA,
// AVX-512F/DQ); the file is built with -ffp-contract=off so that no path fuses a multiply-add the
// source does not spell as std::fma, and with -fno-math-errno so that sqrt vectorises (it never sees a
// negative argument: −2 ln u1 ≥ 0).
#include "core/normal_v2.h"

#include <bit>
#include <cmath>

#include "core/rng.h"

namespace upcycle {
namespace {

// ln u = e·ln 2 + ln(1 + f) with u = 2^e (1 + f), 1 + f ∈ [√½, √2): the exponent split is integer
// arithmetic on the bits; ln(1 + f) = f + f²·Q(f), Q a degree-8 least-squares fit on that interval.
// ln 2 = kLn2Hi + kLn2Lo with kLn2Hi's low 9 bits zero, so e·kLn2Hi is exact for |e| ≤ 2^9.
__attribute__((always_inline)) inline float log_unit(float u) {
  constexpr float kLn2Hi = 0x1.62e4p-1f, kLn2Lo = 0x1.7f7d1cp-20f;
  const uint32_t bits = std::bit_cast<uint32_t>(u);
  const int32_t e = (int32_t(bits) - int32_t(0x3f3504f3)) >> 23;  // 0x3f3504f3 = √½
  const float f = std::bit_cast<float>(bits - (uint32_t(e) << 23)) - 1.0f;  // exact (Sterbenz)
  float q = -0x1.4237fep-4f;
  q = std::fma(q, f, 0x1.0696e4p-3f);
  q = std::fma(q, f, -0x1.0c524cp-3f);
  q = std::fma(q, f, 0x1.22973ap-3f);
  q = std::fma(q, f, -0x1.548882p-3f);
  q = std::fma(q, f, 0x1.99a3ecp-3f);
  q = std::fma(q, f, -0x1.000206p-2f);
  q = std::fma(q, f, 0x1.55554ep-2f);
  q = std::fma(q, f, -0x1.fffffep-2f);
  const float fe = float(e);
  const float low = std::fma(f * f, q, fe * kLn2Lo);
  return fe * kLn2Hi + (f + low);
}

// cos and sin of 2π·t/2^24 for t < 2^24: t = 2^22·q + r with |r| ≤ 2^21 (q the nearest quarter turn,
// integer arithmetic), x = r/2^22 ∈ [−½, ½] exactly, polynomials for sin(πx/2) (odd, to x⁹) and
// cos(πx/2) (even, to x¹⁰) fitted on that interval, then rotated by q quarter turns (swaps and sign
// flips: exact).
__attribute__((always_inline)) inline void sincos_turn(uint32_t t, float& c_out, float& s_out) {
  const uint32_t q = (t + (1u << 21)) >> 22;  // 0..4
  const float x = float(int32_t(t) - int32_t(q << 22)) * 0x1p-22f;
  const float x2 = x * x;
  float s = 0x1.4bc87ap-13f;
  s = std::fma(s, x2, -0x1.32ca9ep-8f);
  s = std::fma(s, x2, 0x1.466bbap-4f);
  s = std::fma(s, x2, -0x1.4abbcep-1f);
  s = std::fma(s, x2, 0x1.921fb6p+0f);
  s = s * x;
  float c = -0x1.a2f82ap-16f;
  c = std::fma(c, x2, 0x1.e1f138p-11f);
  c = std::fma(c, x2, -0x1.55d3c8p-6f);
  c = std::fma(c, x2, 0x1.03c1f0p-2f);
  c = std::fma(c, x2, -0x1.3bd3ccp+0f);
  c = std::fma(c, x2, 1.0f);
  // Quarter q: (cos, sin) of q·90° + a is (c, s), (−s, c), (−c, −s), (s, −c) for q = 0, 1, 2, 3.
  const bool swap = (q & 1u) != 0;
  const uint32_t cos_sign = ((q + 1u) & 2u) << 30, sin_sign = (q & 2u) << 30;
  const float cs = swap ? s : c, sn = swap ? c : s;
  c_out = std::bit_cast<float>(std::bit_cast<uint32_t>(cs) ^ cos_sign);
  s_out = std::bit_cast<float>(std::bit_cast<uint32_t>(sn) ^ sin_sign);
}

__attribute__((always_inline)) inline float uniform1(uint64_t b) {
  return (float(int32_t(b >> 33)) + 0.5f) * 0x1p-31f;
}

__attribute__((always_inline)) inline void pairs_loop(uint64_t key, const uint64_t* pairs, size_t n, float* out) {
#pragma omp simd
  for (size_t k = 0; k < n; ++k) {
    const uint64_t b = mix64(key ^ mix64(pairs[k]));
    const float r = std::sqrt(-2.0f * log_unit(uniform1(b)));
    float c, s;
    sincos_turn(uint32_t(b) & 0xffffffu, c, s);
    out[2 * k] = r * c;
    out[2 * k + 1] = r * s;
  }
}

void pairs_portable(uint64_t key, const uint64_t* pairs, size_t n, float* out) { pairs_loop(key, pairs, n, out); }

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512dq,avx512vl,fma"))) void pairs_avx512(uint64_t key, const uint64_t* pairs,
                                                                           size_t n, float* out) {
  pairs_loop(key, pairs, n, out);
}
__attribute__((target("avx2,fma"))) void pairs_avx2(uint64_t key, const uint64_t* pairs, size_t n, float* out) {
  pairs_loop(key, pairs, n, out);
}

bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512vl");
  return yes;
}
bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#endif

}  // namespace

bool normal_pairs_v2_with(VectorPath path, uint64_t key, const uint64_t* pairs, size_t n, float* out) {
  switch (path) {
    case VectorPath::kPortable: pairs_portable(key, pairs, n, out); return true;
#if defined(__x86_64__)
    case VectorPath::kAvx2:
      if (!has_avx2()) return false;
      pairs_avx2(key, pairs, n, out);
      return true;
    case VectorPath::kAvx512:
      if (!has_avx512()) return false;
      pairs_avx512(key, pairs, n, out);
      return true;
#else
    default: return false;
#endif
  }
  return false;
}

void normal_pairs_v2(uint64_t key, const uint64_t* pairs, size_t n, float* out) {
#if defined(__x86_64__)
  if (has_avx512()) return pairs_avx512(key, pairs, n, out);
  if (has_avx2()) return pairs_avx2(key, pairs, n, out);
#endif
  pairs_portable(key, pairs, n, out);
}

float normal_v2_log(float u) { return log_unit(u); }
void normal_v2_sincos(uint32_t turn24, float& c, float& s) { sincos_turn(turn24, c, s); }
float normal_v2_uniform1(uint64_t bits) { return uniform1(bits); }

}  // namespace upcycle
