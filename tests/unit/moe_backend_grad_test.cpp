// The MoE data-path ops' gradients, proven as the dense ops' in backend_grad_test.cpp: the double
// reference backward against central finite differences of the double forward (each check must also
// reject a (1 + 1e-5) error in one element), then each registered backend's fp32 backward against that
// double gradient at the same inputs within 1e-5 relative (1e-2 for grouped linear on cpu-bf16, which
// rounds its inputs to bf16: test::matmul_rtol).
// Steps and tolerances: softmax is smooth (h = 1e-5, tol 1e-7 of max |grad|: truncation and rounding
// are both ≈ 1e-10); gather, scatter (in x and in the weights) and grouped linear are affine in each
// single element, so central differences are exact up to rounding (h = 1e-2, tol 1e-10).
// Sizes: repeated and unused destination rows; empty groups first, in the middle and last; K = 67
// crosses the cpu kernels' 64-column blocks.
#include <gtest/gtest.h>

#include <string>

#include "backend/backend.h"
#include "backend/ref/ref_kernels.h"
#include "support/backend_test_support.h"
#include "support/finite_differences.h"

namespace upcycle::backend {
namespace {

using test::FdSpec;
using test::matches_finite_differences;
using test::random_floats;
using test::to_double;
using test::weighted_sum;
using Vec = std::vector<double>;

using test::for_each_backend;
using test::kAffine;
using test::kFloatRtol;
using test::kSmooth;
using test::zeros;

// Pointers to G consecutive blocks of `per` elements (one expert's weight each).
template <typename Real>
std::vector<Real*> blocks(std::vector<Real>& buf, int64_t G, int64_t per) {
  std::vector<Real*> p;
  for (int64_t g = 0; g < G; ++g) p.push_back(buf.data() + g * per);
  return p;
}
template <typename Real>
std::vector<const Real*> const_blocks(const std::vector<Real>& buf, int64_t G, int64_t per) {
  std::vector<const Real*> p;
  for (int64_t g = 0; g < G; ++g) p.push_back(buf.data() + g * per);
  return p;
}

TEST(MoeBackendGrad, SoftmaxRows) {
  const int64_t T = 5, E = 7;
  const auto logits_f = random_floats(size_t(T * E), 1, 2.0f), r_f = random_floats(size_t(T * E), 2);
  Vec logits = to_double(logits_f), p(logits.size()), dlogits(logits.size());
  const Vec r = to_double(r_f);
  ref::softmax_rows(p.data(), logits.data(), T, E);
  ref::softmax_rows_backward(dlogits.data(), r.data(), p.data(), T, E);
  auto objective = [&] {
    Vec probs(logits.size());
    ref::softmax_rows(probs.data(), logits.data(), T, E);
    return weighted_sum(r, probs.data());
  };
  EXPECT_TRUE(matches_finite_differences(logits, dlogits, objective, kSmooth));
  for_each_backend([&](Backend& be) {
    std::vector<float> p_f(logits.size());
    auto dlogits_f = zeros(logits.size());
    be.softmax_rows(p_f.data(), logits_f.data(), T, E);
    be.softmax_rows_backward(dlogits_f.data(), r_f.data(), p_f.data(), T, E);
    EXPECT_TRUE(test::all_close(dlogits_f, dlogits, kFloatRtol));
  });
}

// Weighted and unweighted (null weights = all 1) scatter, gradients for x and for the weights.
TEST(MoeBackendGrad, ScatterAddRows) {
  const int64_t T = 5, A = 9, D = 5;
  const std::vector<int32_t> rows = {3, 0, 3, 4, 1, 3, 0, 4, 1};  // repeats; row 2 unused
  const auto x_f = random_floats(size_t(A * D), 10), w_f = random_floats(size_t(A), 11);
  const auto r_f = random_floats(size_t(T * D), 12);
  for (bool weighted : {true, false}) {
    SCOPED_TRACE(weighted ? "weighted" : "unweighted");
    Vec x = to_double(x_f), w = to_double(w_f), dx(x.size()), dw(w.size());
    const Vec r = to_double(r_f);
    const double* w_or_null = weighted ? w.data() : nullptr;
    ref::scatter_add_rows_backward(dx.data(), weighted ? dw.data() : nullptr, r.data(), x.data(), rows.data(),
                                   w_or_null, A, T, D);
    auto objective = [&] {
      Vec y(r.size(), 0.0);
      ref::scatter_add_rows(y.data(), x.data(), rows.data(), w_or_null, A, T, D);
      return weighted_sum(r, y.data());
    };
    EXPECT_TRUE(matches_finite_differences(x, dx, objective, kAffine));
    if (weighted) {
      EXPECT_TRUE(matches_finite_differences(w, dw, objective, kAffine));
    }
    for_each_backend([&](Backend& be) {
      auto dx_f = zeros(x.size()), dw_f = zeros(w.size());
      be.scatter_add_rows_backward(dx_f.data(), weighted ? dw_f.data() : nullptr, r_f.data(), x_f.data(),
                                   rows.data(), weighted ? w_f.data() : nullptr, A, T, D);
      EXPECT_TRUE(test::all_close(dx_f, dx, kFloatRtol));
      if (weighted) {
        EXPECT_TRUE(test::all_close(dw_f, dw, kFloatRtol));
      }
    });
  }
}

// gather_rows' backward is the unweighted scatter of the upstream gradient.
TEST(MoeBackendGrad, GatherRows) {
  const int64_t T = 5, A = 9, D = 5;
  const std::vector<int32_t> rows = {3, 0, 3, 4, 1, 3, 0, 4, 1};
  const auto src_f = random_floats(size_t(T * D), 13), r_f = random_floats(size_t(A * D), 14);
  Vec src = to_double(src_f), dsrc(src.size());
  const Vec r = to_double(r_f);
  ref::scatter_add_rows(dsrc.data(), r.data(), rows.data(), static_cast<const double*>(nullptr), A, T, D);
  auto objective = [&] {
    Vec out(r.size());
    ref::gather_rows(out.data(), src.data(), rows.data(), A, T, D);
    return weighted_sum(r, out.data());
  };
  EXPECT_TRUE(matches_finite_differences(src, dsrc, objective, kAffine));
  for_each_backend([&](Backend& be) {
    auto dsrc_f = zeros(src.size());
    be.scatter_add_rows(dsrc_f.data(), r_f.data(), rows.data(), nullptr, A, T, D);
    EXPECT_TRUE(test::all_close(dsrc_f, dsrc, kFloatRtol));
  });
}

TEST(MoeBackendGrad, GroupedLinear) {
  const int64_t G = 5, K = 67, N = 3;
  const std::vector<int64_t> offsets = {0, 0, 3, 3, 8, 8};  // groups 0, 2 and 4 empty
  const int64_t A = offsets.back();
  const auto x_f = random_floats(size_t(A * K), 20), w_f = random_floats(size_t(G * N * K), 21);
  const auto r_f = random_floats(size_t(A * N), 22);
  Vec x = to_double(x_f), w = to_double(w_f), dx(x.size()), dw(w.size());
  const Vec r = to_double(r_f);
  ref::grouped_linear_backward(dx.data(), blocks(dw, G, N * K).data(), r.data(), x.data(),
                               const_blocks(w, G, N * K).data(), offsets.data(), G, K, N);
  auto objective = [&] {
    Vec y(r.size());
    ref::grouped_linear_forward(y.data(), x.data(), const_blocks(w, G, N * K).data(), offsets.data(), G, K, N);
    return weighted_sum(r, y.data());
  };
  EXPECT_TRUE(matches_finite_differences(x, dx, objective, kAffine));
  EXPECT_TRUE(matches_finite_differences(w, dw, objective, kAffine));
  for_each_backend([&](Backend& be) {
    const double rtol = test::matmul_rtol(be.name(), kFloatRtol);  // bf16 inputs on cpu-bf16
    auto dx_f = zeros(x.size()), dw_f = zeros(w.size());
    be.grouped_linear_backward(dx_f.data(), blocks(dw_f, G, N * K).data(), r_f.data(), x_f.data(),
                               const_blocks(w_f, G, N * K).data(), offsets.data(), G, K, N);
    EXPECT_TRUE(test::all_close(dx_f, dx, rtol));
    EXPECT_TRUE(test::all_close(dw_f, dw, rtol));
  });
}

}  // namespace
}  // namespace upcycle::backend
