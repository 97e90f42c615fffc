// Every backward op, on both backends, against central finite differences of L = Σ r ⊙ forward(·)
// with a fixed random r. Forward outputs are fp32, so the difference quotient carries rounding noise
// of about eps·|L-terms|/h; sizes are small (a few dozen outputs) and h = 1e-3 keeps that noise and
// the O(h²) truncation error well under the 1e-3 tolerance (relative to the largest gradient), while
// a flipped sign or a dropped term in a backward is off by O(1). Each check also demands a gradient
// that is not trivially zero, so a backward that writes nothing cannot pass.
#include <gtest/gtest.h>

#include <functional>

#include "backend/backend.h"
#include "support/backend_test_support.h"
#include "support/finite_differences.h"

namespace upcycle::backend {
namespace {

using test::random_floats;

constexpr float kStep = 1e-3f;
constexpr double kTol = 1e-3;

// Backend ops have O(1) gradients on these inputs: demand them well above zero.
::testing::AssertionResult matches_finite_differences(std::vector<float>& param, const std::vector<float>& analytic,
                                                      const std::function<double()>& objective) {
  return test::matches_finite_differences(param, analytic, objective, kStep, kTol, 1e-2);
}

class BackendOpGrad : public ::testing::TestWithParam<BackendKind> {
 protected:
  std::unique_ptr<Backend> be_ = make_backend(GetParam());
};

TEST_P(BackendOpGrad, Linear) {
  const int64_t M = 3, K = 5, N = 4;
  auto x = random_floats(size_t(M * K), 1), w = random_floats(size_t(N * K), 2), b = random_floats(size_t(N), 3);
  const auto r = random_floats(size_t(M * N), 4);
  std::vector<float> dx(x.size(), 0.0f), dw(w.size(), 0.0f), db(b.size(), 0.0f);
  be_->linear_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), M, K, N);
  auto objective = [&] {
    std::vector<float> y(r.size());
    be_->linear_forward(y.data(), x.data(), w.data(), b.data(), M, K, N);
    return test::weighted_sum(r, y.data());
  };
  EXPECT_TRUE(matches_finite_differences(x, dx, objective));
  EXPECT_TRUE(matches_finite_differences(w, dw, objective));
  EXPECT_TRUE(matches_finite_differences(b, db, objective));
}

TEST_P(BackendOpGrad, RmsNorm) {
  const int64_t T = 3, D = 6;
  auto x = random_floats(size_t(T * D), 10), w = random_floats(size_t(D), 11);
  const auto r = random_floats(x.size(), 12);
  std::vector<float> y(x.size()), rstd(static_cast<size_t>(T)), dx(x.size(), 0.0f), dw(w.size(), 0.0f);
  be_->rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), T, D, 1e-6f);
  be_->rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), T, D);
  auto objective = [&] {
    be_->rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), T, D, 1e-6f);
    return test::weighted_sum(r, y.data());
  };
  EXPECT_TRUE(matches_finite_differences(x, dx, objective));
  EXPECT_TRUE(matches_finite_differences(w, dw, objective));
}

// rope is linear in x; its backward is the inverse rotation applied to the upstream gradient.
TEST_P(BackendOpGrad, Rope) {
  const int64_t seq_len = 3, T = 6, H = 2, S = 4;
  const auto inv_freq = test::rope_inv_freq(S, 10.0);  // small base: angles of order 1 in every pair
  auto x = random_floats(size_t(T * H * S), 20);
  const auto r = random_floats(x.size(), 21);
  auto dx = r;
  be_->rope(dx.data(), inv_freq.data(), T, seq_len, H, S, 2, /*inverse=*/true);
  auto objective = [&] {
    auto y = x;
    be_->rope(y.data(), inv_freq.data(), T, seq_len, H, S, 2, false);
    return test::weighted_sum(r, y.data());
  };
  EXPECT_TRUE(matches_finite_differences(x, dx, objective));
}

TEST_P(BackendOpGrad, Attention) {
  for (int64_t window : {0, 3}) {
    SCOPED_TRACE("window " + std::to_string(window));
    const AttentionShape sh{.batch = 2, .seq_len = 5, .heads = 4, .kv_heads = 2, .head_dim = 3, .window = window,
                            .scale = 1.0f / std::sqrt(3.0f)};
    const int64_t T = sh.batch * sh.seq_len;
    auto q = random_floats(size_t(T * sh.heads * sh.head_dim), 30);
    auto k = random_floats(size_t(T * sh.kv_heads * sh.head_dim), 31);
    auto v = random_floats(k.size(), 32);
    const auto r = random_floats(q.size(), 33);
    std::vector<float> out(q.size()), lse(size_t(T * sh.heads));
    std::vector<float> dq(q.size(), 0.0f), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
    be_->attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), sh);
    be_->attention_backward(dq.data(), dk.data(), dv.data(), r.data(), q.data(), k.data(), v.data(), out.data(),
                            lse.data(), sh);
    auto objective = [&] {
      std::vector<float> o(q.size()), l(lse.size());
      be_->attention_forward(o.data(), l.data(), q.data(), k.data(), v.data(), sh);
      return test::weighted_sum(r, o.data());
    };
    EXPECT_TRUE(matches_finite_differences(q, dq, objective));
    EXPECT_TRUE(matches_finite_differences(k, dk, objective));
    EXPECT_TRUE(matches_finite_differences(v, dv, objective));
  }
}

TEST_P(BackendOpGrad, SwiGlu) {
  const int64_t n = 20;
  auto g = random_floats(size_t(n), 40, 2.0f), u = random_floats(size_t(n), 41);
  const auto r = random_floats(size_t(n), 42);
  std::vector<float> dg(g.size(), 0.0f), du(u.size(), 0.0f);
  be_->swiglu_backward(dg.data(), du.data(), r.data(), g.data(), u.data(), n);
  auto objective = [&] {
    std::vector<float> h(g.size());
    be_->swiglu_forward(h.data(), g.data(), u.data(), n);
    return test::weighted_sum(r, h.data());
  };
  EXPECT_TRUE(matches_finite_differences(g, dg, objective));
  EXPECT_TRUE(matches_finite_differences(u, du, objective));
}

TEST_P(BackendOpGrad, Embedding) {
  const int64_t rows = 5, T = 7, D = 3;
  const std::vector<int32_t> ids = {4, 0, 4, 2, 0, 4, 1};  // repeats; row 3 unused (its gradient stays 0)
  auto table = random_floats(size_t(rows * D), 50);
  const auto r = random_floats(size_t(T * D), 51);
  std::vector<float> dtable(table.size(), 0.0f);
  be_->embedding_backward(dtable.data(), r.data(), ids.data(), T, D);
  auto objective = [&] {
    std::vector<float> x(r.size());
    be_->embedding_forward(x.data(), table.data(), ids.data(), T, D);
    return test::weighted_sum(r, x.data());
  };
  EXPECT_TRUE(matches_finite_differences(table, dtable, objective));
}

TEST_P(BackendOpGrad, CrossEntropy) {
  const int64_t T = 4, V = 7;
  const float dloss = 1.7f;  // the upstream gradient must scale dlogits
  const std::vector<int32_t> targets = {3, -100, 0, 6};
  auto logits = random_floats(size_t(T * V), 60, 2.0f);
  std::vector<float> dlogits(logits.size());
  be_->cross_entropy(dlogits.data(), logits.data(), targets.data(), T, V, dloss);
  auto objective = [&] {
    std::vector<float> scratch(logits.size());
    return double(dloss) * be_->cross_entropy(scratch.data(), logits.data(), targets.data(), T, V, dloss);
  };
  EXPECT_TRUE(matches_finite_differences(logits, dlogits, objective));
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendOpGrad, ::testing::Values(BackendKind::kRef, BackendKind::kCpu),
                         [](const ::testing::TestParamInfo<BackendKind>& info) {
                           return info.param == BackendKind::kRef ? std::string("ref") : std::string("cpu");
                         });

}  // namespace
}  // namespace upcycle::backend
