// Helpers for backend op tests: seeded random tensors, a norm-aware closeness check, and the usual
// inv_freq table. Header-only so only the backend tests pull in the backend library's headers.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"

namespace upcycle::test {

// n standard-normal draws times `scale`, reproducible from (seed, stream).
inline std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f,
                                        std::string_view stream = "backend-test") {
  std::vector<float> out(n);
  CounterRng(seed, stream).fill_normal(out.data(), 0, n, 0.0f, scale);
  return out;
}

inline double max_abs(const std::vector<float>& v) {
  double m = 0.0;
  for (float e : v) m = std::max(m, double(std::fabs(e)));
  return m;
}

// Element-wise |got − want| ≤ rtol·(|want_i| + max_j |want_j|). The max term is there because fp32
// sums of mixed-sign terms cancel: an output near zero carries absolute error of order
// eps·(size of its terms), not eps·|output|, so a purely element-wise relative bound would be noise.
inline ::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<float>& want,
                                            double rtol) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  const double scale = max_abs(want);
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = rtol * (std::fabs(double(want[i])) + scale);
    if (!(std::fabs(double(got[i]) - double(want[i])) <= tol)) {
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", want " << want[i]
                                           << " (tol " << tol << ", max |want| " << scale << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// HF default rotary frequencies: inv_freq[i] = base^(−2i/S).
inline std::vector<float> rope_inv_freq(int64_t S, double base = 10000.0) {
  std::vector<float> f(size_t(S / 2));
  for (int64_t i = 0; i < S / 2; ++i) f[size_t(i)] = float(std::pow(base, -2.0 * double(i) / double(S)));
  return f;
}

}  // namespace upcycle::test
