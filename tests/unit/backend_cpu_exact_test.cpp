// The cpu backend's speed-ups that must not change a bit (issue 16): l2_norm's interleaved chunk sums,
// AdamW and scale in AVX-512 lanes, rope's cached cos/sin tables. Each is compared for exact equality
// with the plain formula the op's contract states (per chunk a serial double sum in index order, chunk
// sums in chunk order; torch's single-tensor AdamW element update; one multiplication in double), on
// sizes that cross the 8-chunk groups and leave a ragged tail — and rope against a fresh backend after
// a call with other frequencies, which a stale table would fail.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "support/backend_test_support.h"

namespace upcycle::backend {
namespace {

using test::random_floats;

constexpr int64_t kChunk = int64_t{1} << 15;  // optimizer.cpp's work unit: the norm's summation order

TEST(CpuExact, L2NormEqualsChunkedSerialSum) {
  auto be = make_backend(BackendKind::kCpu);
  for (const int64_t n : {int64_t{8} * kChunk, 17 * kChunk + 123, int64_t{5000}}) {
    const auto x = random_floats(size_t(n), 9, 3.0f);
    double total = 0.0;
    for (int64_t lo = 0; lo < n; lo += kChunk) {
      double sum = 0.0;
      for (int64_t i = lo; i < std::min(n, lo + kChunk); ++i) sum += double(x[size_t(i)]) * double(x[size_t(i)]);
      total += sum;
    }
    EXPECT_EQ(be->l2_norm(x.data(), n), std::sqrt(total)) << n;
  }
}

TEST(CpuExact, AdamWAndScaleEqualScalarFormula) {
  auto be = make_backend(BackendKind::kCpu);
  const int64_t n = 3 * kChunk + 77;
  const std::vector<int64_t> offsets = {0, 1000, 1000, kChunk + 5, n};  // an empty range, ranges across chunks
  const std::vector<uint8_t> decay = {1, 0, 0, 1};
  Backend::AdamWScalars s;
  s.beta1 = 0.9, s.beta2 = 0.95, s.eps = 1e-8, s.step_size = 3e-4 / (1 - 0.9 * 0.9);
  s.bias_correction2_sqrt = std::sqrt(1 - 0.95 * 0.95), s.decay_keep = 1 - 3e-4 * 0.1;
  auto p = random_floats(size_t(n), 1), m = random_floats(size_t(n), 2, 0.1f), g = random_floats(size_t(n), 4);
  auto v = random_floats(size_t(n), 3, 0.1f);
  for (float& e : v) e = e * e;
  std::vector<float> p_ref = p, m_ref = m, v_ref = v;
  for (size_t r = 0; r + 1 < offsets.size(); ++r) {
    for (int64_t i = offsets[r]; i < offsets[r + 1]; ++i) {
      const double gd = g[size_t(i)], keep = decay[r] ? s.decay_keep : 1.0;
      const double m_new = s.beta1 * double(m_ref[size_t(i)]) + (1.0 - s.beta1) * gd;
      const double v_new = s.beta2 * double(v_ref[size_t(i)]) + (1.0 - s.beta2) * gd * gd;
      m_ref[size_t(i)] = float(m_new), v_ref[size_t(i)] = float(v_new);
      const double denom = std::sqrt(double(v_ref[size_t(i)])) / s.bias_correction2_sqrt + s.eps;
      p_ref[size_t(i)] = float(double(p_ref[size_t(i)]) * keep - s.step_size * double(m_ref[size_t(i)]) / denom);
    }
  }
  be->adamw_step(p.data(), m.data(), v.data(), g.data(), offsets.data(), decay.data(), 4, s);
  EXPECT_EQ(0, std::memcmp(p.data(), p_ref.data(), p.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(m.data(), m_ref.data(), m.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(v.data(), v_ref.data(), v.size() * sizeof(float)));
  std::vector<float> scaled = g, scaled_ref = g;
  for (float& e : scaled_ref) e = float(double(e) * 0.3);
  be->scale(scaled.data(), 0.3, n);
  EXPECT_EQ(0, std::memcmp(scaled.data(), scaled_ref.data(), scaled.size() * sizeof(float)));
}

TEST(CpuExact, RopeTablesFollowTheirKey) {
  const int64_t B = 2, Tseq = 24, H = 3, S = 8, T = B * Tseq;
  const std::vector<float> freq_a = {1.0f, 0.1f, 0.01f, 0.001f}, freq_b = {0.5f, 0.05f, 0.005f, 0.0005f};
  const auto x = random_floats(size_t(T * H * S), 12);
  auto rotated = [&](Backend& be, const std::vector<float>& freq, int64_t offset, RopeDirection dir) {
    std::vector<float> y = x;
    be.rope(y.data(), freq.data(), T, Tseq, H, S, offset, dir);
    return y;
  };
  auto warm = make_backend(BackendKind::kCpu);
  for (const RopeDirection dir : {RopeDirection::kForward, RopeDirection::kInverse}) {
    rotated(*warm, freq_a, 0, dir);  // fills the table for freq_a at offset 0
    for (const auto& [freq, offset] : {std::pair{freq_a, int64_t{0}}, {freq_b, int64_t{0}}, {freq_b, int64_t{5}}}) {
      const auto cached = rotated(*warm, freq, offset, dir);
      const auto fresh = rotated(*make_backend(BackendKind::kCpu), freq, offset, dir);
      EXPECT_EQ(0, std::memcmp(cached.data(), fresh.data(), x.size() * sizeof(float))) << offset;
    }
  }
  // The tables are per position: a forward then an inverse rotation gives x back within rounding.
  auto be = make_backend(BackendKind::kCpu);
  std::vector<float> y = rotated(*be, freq_a, 0, RopeDirection::kForward);
  be->rope(y.data(), freq_a.data(), T, Tseq, H, S, 0, RopeDirection::kInverse);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], x[i], 1e-5f);
}

}  // namespace
}  // namespace upcycle::backend
