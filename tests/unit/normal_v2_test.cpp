// Normal stream v2 (core/normal_v2.h): every compiled vector path gives the portable path's bits over
// many counters and over hand-picked edge bit patterns (u1 at 2^-32 and at 1, angles on octant and
// quadrant boundaries), the polynomial log and sin/cos stay within stated bounds of double-precision
// libm, and 2^21 draws look standard normal (moments, a Kolmogorov–Smirnov statistic, no NaN/inf,
// |z| ≤ sqrt(−2 ln 2^-32)). Also the CounterRng contract under v2: fills over any split equal normal(i).
#include "core/normal_v2.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>
#include <vector>

#include "core/rng.h"

namespace upcycle {
namespace {

// The inverse of mix64, so a test can ask for the pair whose 64 bits are a chosen pattern.
uint64_t unxorshift(uint64_t y, int s) {
  uint64_t x = y;
  for (int i = s; i < 64; i += s) x ^= y >> i;
  return x;
}
uint64_t mod_inverse(uint64_t m) {
  uint64_t inv = m;  // Newton's iteration doubles the correct low bits each step (m odd)
  for (int i = 0; i < 6; ++i) inv *= 2 - m * inv;
  return inv;
}
uint64_t unmix64(uint64_t y) {
  y = unxorshift(y, 31) * mod_inverse(0x94d049bb133111ebull);
  y = unxorshift(y, 27) * mod_inverse(0xbf58476d1ce4e5b9ull);
  return unxorshift(y, 30) - 0x9e3779b97f4a7c15ull;
}
// The pair whose bits mix64(key ^ mix64(pair)) are b.
uint64_t pair_with_bits(uint64_t key, uint64_t b) { return unmix64(unmix64(b) ^ key); }

constexpr uint64_t kKey = 0x0123456789abcdefull;
const double kMaxAbs = std::sqrt(-2.0 * std::log(0x1p-32)) * (1 + 1e-6);  // 6.6604: u1 ≥ 2^-32, + fp32 rounding

// Edge patterns first, then counters 0..n-1 and a far range (counters near 2^40).
std::vector<uint64_t> test_pairs() {
  std::vector<uint64_t> pairs;
  const uint64_t highs[] = {0, 1, 2, 3, (1u << 23) - 1, 1u << 24, (1u << 24) + 1, (1u << 30), (1u << 31) - 2, (1u << 31) - 1};
  const uint64_t turns[] = {0, 1, (1u << 21) - 1, 1u << 21, (1u << 21) + 1, 1u << 22, 3u << 21, 1u << 23, 5u << 21,
                            3u << 22, 7u << 21, (1u << 24) - 1, (1u << 24) - 2};
  for (uint64_t hi : highs)
    for (uint64_t t : turns)
      for (uint64_t mid : {uint64_t{0}, uint64_t{0x1ff}, uint64_t{0x5a}})
        pairs.push_back(pair_with_bits(kKey, (hi << 33) | (mid << 24) | t));
  for (uint64_t i = 0; i < (1u << 18); ++i) pairs.push_back(i);
  for (uint64_t i = 0; i < 4099; ++i) pairs.push_back((uint64_t{1} << 40) + 7 * i);
  return pairs;
}

TEST(NormalV2, InverseMixFindsTheRequestedBits) {
  for (uint64_t b : {uint64_t{0}, uint64_t{1} << 33, ~uint64_t{0}, uint64_t{0x123456789}})
    EXPECT_EQ(mix64(kKey ^ mix64(pair_with_bits(kKey, b))), b);
}

TEST(NormalV2, EveryPathGivesThePortableBits) {
  const std::vector<uint64_t> pairs = test_pairs();
  std::vector<float> want(2 * pairs.size());
  ASSERT_TRUE(normal_pairs_v2_with(VectorPath::kPortable, kKey, pairs.data(), pairs.size(), want.data()));
  for (float z : want) ASSERT_TRUE(std::isfinite(z) && std::fabs(z) <= kMaxAbs) << z;
  int paths_run = 0;
  for (VectorPath path : {VectorPath::kAvx2, VectorPath::kAvx512}) {
    // Odd offsets and lengths: vector tails and unaligned output.
    std::vector<float> got(want.size() + 1, -7.0f);
    if (!normal_pairs_v2_with(path, kKey, pairs.data(), pairs.size() - 3, got.data() + 1)) continue;
    ++paths_run;
    EXPECT_EQ(got[0], -7.0f);
    for (size_t i = 0; i + 6 < want.size(); ++i)
      ASSERT_EQ(std::bit_cast<uint32_t>(got[i + 1]), std::bit_cast<uint32_t>(want[i])) << "value " << i << " path " << int(path);
  }
  std::vector<float> dispatched(want.size());
  normal_pairs_v2(kKey, pairs.data(), pairs.size(), dispatched.data());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(std::bit_cast<uint32_t>(dispatched[i]), std::bit_cast<uint32_t>(want[i])) << i;
  std::printf("vector paths compared with the portable one: %d\n", paths_run);
}

TEST(NormalV2, EdgeUniformsGiveTheBoundedTailsAndZero) {
  float z[2];
  // hi = 0: u1 = 2^-32, the largest radius; angle 0: (r, 0).
  uint64_t p = pair_with_bits(kKey, 0);
  normal_pairs_v2(kKey, &p, 1, z);
  EXPECT_NEAR(z[0], kMaxAbs, 1e-5);
  EXPECT_EQ(z[1], 0.0f);
  // hi = 2^31 − 1 rounds to u1 = 1: radius 0.
  p = pair_with_bits(kKey, ((uint64_t{1} << 31) - 1) << 33 | 12345);
  normal_pairs_v2(kKey, &p, 1, z);
  EXPECT_EQ(std::fabs(z[0]) + std::fabs(z[1]), 0.0f);
  // A quarter turn: (0, r) exactly, r as for hi = 0.
  p = pair_with_bits(kKey, uint64_t{1} << 22);
  normal_pairs_v2(kKey, &p, 1, z);
  EXPECT_EQ(z[0], 0.0f);
  EXPECT_NEAR(z[1], kMaxAbs, 1e-5);
}

TEST(NormalV2, LogWithinBoundsOfLibm) {
  double worst_abs = 0, worst_rel = 0;
  auto check = [&](uint64_t hi) {
    const float u = normal_v2_uniform1(hi << 33);
    const double want = std::log(double(u)), got = normal_v2_log(u);
    worst_abs = std::max(worst_abs, std::fabs(got - want));
    if (want != 0) worst_rel = std::max(worst_rel, std::fabs(got - want) / std::fabs(want));
  };
  for (uint64_t hi = 0; hi < (1u << 20); ++hi) check(hi);                             // the tail, densely
  for (uint64_t hi = 1u << 20; hi < (1u << 31); hi += 997) check(hi);                  // everything else
  for (uint64_t hi = (1u << 31) - (1u << 16); hi < (1u << 31); ++hi) check(hi);      // u1 → 1
  std::printf("log: max abs error %.3g, max rel error %.3g\n", worst_abs, worst_rel);
  EXPECT_LT(worst_rel, 1.2e-7);  // ≈ 1 ulp of fp32
  EXPECT_LT(worst_abs, 1.5e-6);  // |ln u| ≤ 22.2
}

TEST(NormalV2, SinCosWithinBoundsOfLibmAtEveryAngle) {
  double worst = 0;
  for (uint32_t t = 0; t < (1u << 24); ++t) {
    float c, s;
    normal_v2_sincos(t, c, s);
    const double angle = 2.0 * std::numbers::pi * double(t) * 0x1p-24;
    worst = std::max({worst, std::fabs(c - std::cos(angle)), std::fabs(s - std::sin(angle))});
    ASSERT_LE(std::fabs(c), 1.0f);
    ASSERT_LE(std::fabs(s), 1.0f);
  }
  std::printf("sin/cos: max abs error %.3g over all 2^24 angles\n", worst);
  EXPECT_LT(worst, 1.5e-7);
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::numbers::sqrt2); }

TEST(NormalV2, DrawsAreStandardNormal) {
  const CounterRng rng(2026, "normal-v2-quality", RngVersion::kV2);
  constexpr size_t n = size_t{1} << 21;
  std::vector<float> z(n);
  rng.fill_standard_normal(z.data(), 0, n);
  double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
  for (float v : z) {
    ASSERT_TRUE(std::isfinite(v) && std::fabs(v) <= kMaxAbs) << v;
    m1 += v;
  }
  m1 /= double(n);
  for (float v : z) {
    const double d = v - m1;
    m2 += d * d, m3 += d * d * d, m4 += d * d * d * d;
  }
  m2 /= double(n), m3 /= double(n), m4 /= double(n);
  const double skew = m3 / std::pow(m2, 1.5), kurt = m4 / (m2 * m2) - 3.0;
  // Standard errors at n = 2^21: mean 7e-4, variance 1e-3, skew 1.7e-3, excess kurtosis 3.4e-3; 5 σ.
  EXPECT_NEAR(m1, 0.0, 3.5e-3);
  EXPECT_NEAR(m2, 1.0, 5e-3);
  EXPECT_NEAR(skew, 0.0, 8.5e-3);
  EXPECT_NEAR(kurt, 0.0, 1.7e-2);
  std::sort(z.begin(), z.end());
  double ks = 0;
  for (size_t i = 0; i < n; ++i) {
    const double F = normal_cdf(z[i]);
    ks = std::max({ks, F - double(i) / double(n), double(i + 1) / double(n) - F});
  }
  std::printf("v2: mean %.2e var %.5f skew %.2e excess kurtosis %.2e KS D %.2e (n = %zu)\n", m1, m2, skew, kurt, ks, n);
  EXPECT_LT(ks, 1.95 / std::sqrt(double(n)));  // the 0.1 % critical value
}

TEST(NormalV2, CounterRngFillsEqualPerElementNormals) {
  const CounterRng a(1, "w", RngVersion::kV2), v1(1, "w");
  std::vector<float> whole(1001), parts(1001);
  a.fill_normal(whole.data(), 3, 1001, 0.5f, 2.0f);
  a.fill_normal(parts.data(), 3, 500, 0.5f, 2.0f);
  a.fill_normal(parts.data() + 500, 503, 501, 0.5f, 2.0f);
  int differs_from_v1 = 0;
  for (size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(whole[i], parts[i]) << i;
    EXPECT_EQ(whole[i], 0.5f + 2.0f * a.normal(3 + i)) << i;
    differs_from_v1 += whole[i] != 0.5f + 2.0f * v1.normal(3 + i);
  }
  EXPECT_GT(differs_from_v1, 990);  // a different stream, of the same bits
  const uint64_t pairs[] = {9, 2, 2, 1u << 30};
  float z[8];
  a.normal_pairs(pairs, 4, z);
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(z[2 * k], a.normal(2 * pairs[k]));
    EXPECT_EQ(z[2 * k + 1], a.normal(2 * pairs[k] + 1));
  }
  v1.normal_pairs(pairs, 4, z);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(z[2 * k + 1], v1.normal(2 * pairs[k] + 1));
}

}  // namespace
}  // namespace upcycle
