// Central finite differences for gradient tests of composite code (the MoE layer, the MoE ops):
// perturb each element of a parameter by ±step, difference a scalar objective, and compare with the
// analytic gradient within tol·max|analytic|. The quotient divides by the step fp32 actually took.
// Also demands a non-trivial gradient (max|analytic| > min_scale), so a backward that writes nothing
// cannot pass.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "support/backend_test_support.h"

namespace upcycle::test {

inline double weighted_sum(const std::vector<float>& r, const float* y) {
  double acc = 0.0;
  for (size_t i = 0; i < r.size(); ++i) acc += double(r[i]) * y[i];
  return acc;
}

inline ::testing::AssertionResult matches_finite_differences(std::vector<float>& param,
                                                             const std::vector<float>& analytic,
                                                             const std::function<double()>& objective,
                                                             float step, double tol, double min_scale = 1e-3) {
  if (param.size() != analytic.size()) return ::testing::AssertionFailure() << "size mismatch";
  const double scale = max_abs(analytic);
  if (!(scale > min_scale)) return ::testing::AssertionFailure() << "analytic gradient is ~zero (max " << scale << ")";
  for (size_t i = 0; i < param.size(); ++i) {
    const float saved = param[i];
    param[i] = saved + step;
    const float up = param[i];
    const double l_up = objective();
    param[i] = saved - step;
    const float down = param[i];
    const double l_down = objective();
    param[i] = saved;
    const double fd = (l_up - l_down) / (double(up) - double(down));
    if (!(std::fabs(fd - analytic[i]) <= tol * scale)) {
      return ::testing::AssertionFailure() << "element " << i << ": analytic " << analytic[i] << ", finite diff "
                                           << fd << " (max |grad| " << scale << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace upcycle::test
