// Central finite differences for gradient tests: perturb each element of a parameter by ±step,
// difference a scalar objective, and compare with the analytic gradient within tol·max|analytic|.
// The quotient divides by the step the arithmetic actually took. Every check also demands a
// non-trivial gradient (max|analytic| > min_scale), so a backward that writes nothing cannot pass.
//   - fp32 (std::vector<float>): whole-layer and whole-model checks, where tolerances are ~1e-3;
//   - double (std::vector<double>): the per-op checks of the reference kernels' double instantiation
//     (backend/ref/ref_kernels.h), tolerances ~1e-7 and below, and each check must also *reject* the
//     analytic gradient with its largest element scaled by (1 + 1e-5), which proves the tolerance
//     is tight enough to see a relative error that small.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
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

// --- double precision ---

inline std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

inline double weighted_sum(const std::vector<double>& r, const double* y) {
  double acc = 0.0;
  for (size_t i = 0; i < r.size(); ++i) acc += r[i] * y[i];
  return acc;
}

inline double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double e : v) m = std::max(m, std::fabs(e));
  return m;
}

// Step and tolerance of one double check, chosen per op by the caller (see backend_grad_test.cpp).
struct FdSpec {
  double step;
  double tol;               // relative to max |analytic|
  double min_scale = 1e-2;  // max |analytic| must exceed this
};

// Ops whose output is affine in the perturbed input: central differences are exact up to rounding,
// so a large step and a tight tolerance. Smooth non-linear ops: O(h²) truncation at h = 1e-5.
inline constexpr FdSpec kAffine{.step = 1e-2, .tol = 1e-10};
inline constexpr FdSpec kSmooth{.step = 1e-5, .tol = 1e-7};
// A float backward against the double reference gradient at the same inputs.
inline constexpr double kFloatRtol = 1e-5;

// Runs fn on every registered backend, each under a trace naming it.
template <typename Fn>
void for_each_backend(Fn fn) {
  for (backend::BackendKind kind : backend_kinds()) {
    auto be = backend::make_backend(kind);
    SCOPED_TRACE(std::string("backend ") + std::string(be->name()));
    fn(*be);
  }
}

inline std::vector<float> zeros(size_t n) { return std::vector<float>(n, 0.0f); }

// The central-difference gradient of objective with respect to every element of param.
inline std::vector<double> central_differences(std::vector<double>& param, const std::function<double()>& objective,
                                               double step) {
  std::vector<double> fd(param.size());
  for (size_t i = 0; i < param.size(); ++i) {
    const double saved = param[i];
    param[i] = saved + step;
    const double up = param[i];
    const double l_up = objective();
    param[i] = saved - step;
    const double down = param[i];
    const double l_down = objective();
    param[i] = saved;
    fd[i] = (l_up - l_down) / (up - down);
  }
  return fd;
}

// |analytic_i − fd_i| ≤ tol·max|analytic| for every i; the message names the worst element.
inline ::testing::AssertionResult within_tolerance(const std::vector<double>& analytic, const std::vector<double>& fd,
                                                   double tol) {
  const double scale = max_abs(analytic);
  size_t worst = 0;
  double worst_err = 0.0;
  for (size_t i = 0; i < analytic.size(); ++i) {
    const double err = std::fabs(fd[i] - analytic[i]);
    if (std::isnan(err)) return ::testing::AssertionFailure() << "element " << i << " is NaN";
    if (err > worst_err) worst_err = err, worst = i;
  }
  if (!(worst_err <= tol * scale)) {
    return ::testing::AssertionFailure() << "element " << worst << ": analytic " << analytic[worst]
                                         << ", finite diff " << fd[worst] << ", error " << worst_err / scale
                                         << " of max |grad| " << scale << " (tol " << tol << ")";
  }
  return ::testing::AssertionSuccess() << "max error " << worst_err / scale << " of max |grad|";
}

inline ::testing::AssertionResult matches_finite_differences(std::vector<double>& param,
                                                             const std::vector<double>& analytic,
                                                             const std::function<double()>& objective,
                                                             const FdSpec& spec) {
  if (param.size() != analytic.size()) return ::testing::AssertionFailure() << "size mismatch";
  const double scale = max_abs(analytic);
  if (!(scale > spec.min_scale)) {
    return ::testing::AssertionFailure() << "analytic gradient is ~zero (max " << scale << ")";
  }
  const std::vector<double> fd = central_differences(param, objective, spec.step);
  ::testing::AssertionResult ok = within_tolerance(analytic, fd, spec.tol);
  if (!ok) return ok;
  // Sharpness: the same comparison must reject a 1e-5 relative error in the largest element.
  std::vector<double> bumped = analytic;
  const size_t big = size_t(std::max_element(analytic.begin(), analytic.end(),
                                             [](double a, double b) { return std::fabs(a) < std::fabs(b); }) -
                            analytic.begin());
  bumped[big] *= 1.0 + 1e-5;
  if (within_tolerance(bumped, fd, spec.tol)) {
    return ::testing::AssertionFailure() << "check is blind: element " << big << " scaled by (1 + 1e-5) still passes ("
                                         << ok.message() << ")";
  }
  return ok;
}

// Element-wise |got − want| ≤ rtol·(|want_i| + max_j |want_j|), as test::all_close, for an fp32
// result against a double-precision reference.
inline ::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<double>& want,
                                            double rtol) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  const double scale = max_abs(want);
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = rtol * (std::fabs(want[i]) + scale);
    if (!(std::fabs(double(got[i]) - want[i]) <= tol)) {
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", want " << want[i]
                                           << " (tol " << tol << ", max |want| " << scale << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace upcycle::test
