// Every dense op's gradient, proven in two steps (the MoE ops: moe_backend_grad_test.cpp):
//   1. the reference kernels' double instantiation (backend/ref/ref_kernels.h): the analytic backward
//      against central finite differences of the double forward, L = Σ r ⊙ forward(·) with a fixed
//      random r, at tolerances of 1e-7 of the largest gradient or tighter; each check must also reject
//      the analytic gradient with one element scaled by (1 + 1e-5) (test::matches_finite_differences);
//   2. each registered backend's fp32 backward against that double gradient at the same inputs
//      (the fp32 inputs, widened exactly), within 1e-5 relative (test::all_close; 1e-2 for linear on
//      cpu-bf16, which rounds matmul inputs to bf16: test::matmul_rtol).
// Together: every backend's gradient agrees with double-precision finite differences to fp32 accuracy.
// Step and tolerance per op (inputs and gradients are O(1); max |grad| is the scale):
//   kAffine: the objective is affine in each single element (linear, rope, embedding, axpy, rmsnorm in
//     w, attention in v, swiglu in u): central differences have no truncation error, only rounding
//     ≈ ε·Σ|terms|/2h ≈ 1e-13 with h = 1e-2, so tol = 1e-10 (observed ≤ 3e-13);
//   kSmooth: nonlinear (rmsnorm in x, attention in q and k, swiglu in g, cross-entropy): truncation
//     h²·|f'''|/6 plus rounding ε·|L|/h, both ≈ 1e-10 at h = 1e-5, so tol = 1e-7 (observed ≤ 6e-10).
// The fp32 checks these replace (step 1e-3, tol 1e-3) could not see errors below ~1e-3;
// RmsNormEpsMissingInBackwardIsRejected shows a ~1e-5-sized backward bug the double check rejects.
// Sizes are odd and not multiples of 8; attention covers GQA 3:1, MQA, MHA and windows below Tseq.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>

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

TEST(BackendGrad, Linear) {
  const int64_t M = 5, K = 19, N = 6;
  const auto x_f = random_floats(size_t(M * K), 1), w_f = random_floats(size_t(N * K), 2);
  const auto b_f = random_floats(size_t(N), 3), r_f = random_floats(size_t(M * N), 4);
  Vec x = to_double(x_f), w = to_double(w_f), b = to_double(b_f), dx(x.size()), dw(w.size()), db(b.size());
  const Vec r = to_double(r_f);
  ref::linear_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), M, K, N);
  auto objective = [&] {
    Vec y(r.size());
    ref::linear_forward(y.data(), x.data(), w.data(), b.data(), M, K, N);
    return weighted_sum(r, y.data());
  };
  EXPECT_TRUE(matches_finite_differences(x, dx, objective, kAffine));
  EXPECT_TRUE(matches_finite_differences(w, dw, objective, kAffine));
  EXPECT_TRUE(matches_finite_differences(b, db, objective, kAffine));
  for_each_backend([&](Backend& be) {
    const double rtol = test::matmul_rtol(be.name(), kFloatRtol);  // bf16 inputs on cpu-bf16
    auto dx_f = zeros(x.size()), dw_f = zeros(w.size()), db_f = zeros(b.size());
    be.linear_backward(dx_f.data(), dw_f.data(), db_f.data(), r_f.data(), x_f.data(), w_f.data(), M, K, N);
    EXPECT_TRUE(test::all_close(dx_f, dx, rtol));
    EXPECT_TRUE(test::all_close(dw_f, dw, rtol));
    EXPECT_TRUE(test::all_close(db_f, db, rtol));
  });
}

TEST(BackendGrad, RmsNorm) {
  const int64_t T = 5, D = 13;
  const float eps = 1e-6f;
  const auto x_f = random_floats(size_t(T * D), 10), w_f = random_floats(size_t(D), 11);
  const auto r_f = random_floats(x_f.size(), 12);
  Vec x = to_double(x_f), w = to_double(w_f), y(x.size()), rstd(static_cast<size_t>(T)), dx(x.size()), dw(w.size());
  const Vec r = to_double(r_f);
  ref::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), T, D, eps);
  ref::rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), T, D);
  auto objective = [&] {
    Vec out(x.size()), s(static_cast<size_t>(T));
    ref::rmsnorm_forward(out.data(), s.data(), x.data(), w.data(), T, D, eps);
    return weighted_sum(r, out.data());
  };
  EXPECT_TRUE(matches_finite_differences(x, dx, objective, kSmooth));
  EXPECT_TRUE(matches_finite_differences(w, dw, objective, kAffine));  // y is linear in w
  for_each_backend([&](Backend& be) {
    std::vector<float> y_f(x.size()), rstd_f(static_cast<size_t>(T));
    auto dx_f = zeros(x.size()), dw_f = zeros(w.size());
    be.rmsnorm_forward(y_f.data(), rstd_f.data(), x_f.data(), w_f.data(), T, D, eps);
    be.rmsnorm_backward(dx_f.data(), dw_f.data(), r_f.data(), x_f.data(), w_f.data(), rstd_f.data(), T, D);
    EXPECT_TRUE(test::all_close(dx_f, dx, kFloatRtol));
    EXPECT_TRUE(test::all_close(dw_f, dw, kFloatRtol));
  });
}

// A plausible small bug: a backward that recomputes rstd without eps. With eps = 1e-5 and mean(x²) of
// order 1, its gradients are off by ≈ 1e-5 relative: invisible to an fp32 finite-difference check,
// rejected here.
TEST(BackendGrad, RmsNormEpsMissingInBackwardIsRejected) {
  const int64_t T = 5, D = 13;
  const float eps = 1e-5f;
  Vec x = to_double(random_floats(size_t(T * D), 10)), w = to_double(random_floats(size_t(D), 11));
  const Vec r = to_double(random_floats(x.size(), 12));
  Vec y(x.size()), rstd_no_eps(static_cast<size_t>(T)), dx(x.size()), dw(w.size());
  ref::rmsnorm_forward(y.data(), rstd_no_eps.data(), x.data(), w.data(), T, D, 0.0f);
  ref::rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd_no_eps.data(), T, D);
  auto objective = [&] {
    Vec out(x.size()), s(static_cast<size_t>(T));
    ref::rmsnorm_forward(out.data(), s.data(), x.data(), w.data(), T, D, eps);
    return weighted_sum(r, out.data());
  };
  for (auto [param, grad, spec] : {std::tuple{&x, &dx, kSmooth}, std::tuple{&w, &dw, kAffine}}) {
    const ::testing::AssertionResult result = matches_finite_differences(*param, *grad, objective, spec);
    EXPECT_FALSE(result);
    EXPECT_NE(std::string(result.message()).find("finite diff"), std::string::npos) << result.message();
  }
}

// rope is linear in x, so its gradient is the transposed rotation: the inverse applied to r. Both
// directions, several position offsets, batches of sequences (T = B·seq_len) and head counts.
TEST(BackendGrad, RopeBothDirections) {
  struct Case {
    int64_t T, seq_len, heads, S, offset;
  };
  for (const Case& c : {Case{6, 3, 3, 6, 0}, Case{6, 3, 3, 6, 5}, Case{7, 7, 2, 4, 11}}) {
    for (bool inverse : {false, true}) {
      SCOPED_TRACE("T " + std::to_string(c.T) + " offset " + std::to_string(c.offset) +
                   (inverse ? " inverse" : " forward"));
      const auto dir = inverse ? RopeDirection::kInverse : RopeDirection::kForward;
      const auto back = inverse ? RopeDirection::kForward : RopeDirection::kInverse;
      const auto inv_freq_f = test::rope_inv_freq(c.S, 10.0);  // small base: angles of order 1 and more
      const Vec inv_freq = to_double(inv_freq_f);
      const auto x_f = random_floats(size_t(c.T * c.heads * c.S), 20 + uint64_t(c.offset));
      const auto r_f = random_floats(x_f.size(), 21 + uint64_t(c.offset));
      Vec x = to_double(x_f), dx = to_double(r_f);
      const Vec r = dx;
      ref::rope(dx.data(), inv_freq.data(), c.T, c.seq_len, c.heads, c.S, c.offset, back);
      auto objective = [&] {
        Vec y = x;
        ref::rope(y.data(), inv_freq.data(), c.T, c.seq_len, c.heads, c.S, c.offset, dir);
        return weighted_sum(r, y.data());
      };
      EXPECT_TRUE(matches_finite_differences(x, dx, objective, kAffine));
      for_each_backend([&](Backend& be) {
        auto dx_f = r_f;
        be.rope(dx_f.data(), inv_freq_f.data(), c.T, c.seq_len, c.heads, c.S, c.offset, back);
        EXPECT_TRUE(test::all_close(dx_f, dx, kFloatRtol));
      });
    }
  }
}

struct AttnCase {
  const char* name;
  AttentionShape shape;
};

std::vector<AttnCase> attention_cases() {
  auto shape = [](int64_t B, int64_t T, int64_t H, int64_t KV, int64_t S, int64_t window) {
    return AttentionShape{.batch = B, .seq_len = T, .heads = H, .kv_heads = KV, .head_dim = S, .window = window,
                          .scale = float(1.0 / std::sqrt(double(S)))};
  };
  return {{"gqa3 causal", shape(2, 7, 6, 2, 5, 0)},
          {"gqa3 window3", shape(2, 7, 6, 2, 5, 3)},
          {"mqa window4", shape(1, 9, 4, 1, 3, 4)},
          {"mha window2", shape(3, 5, 3, 3, 7, 2)}};
}

TEST(BackendGrad, Attention) {
  for (const AttnCase& c : attention_cases()) {
    SCOPED_TRACE(c.name);
    const AttentionShape& sh = c.shape;
    const int64_t T = sh.batch * sh.seq_len;
    const auto q_f = random_floats(size_t(T * sh.heads * sh.head_dim), 30);
    const auto k_f = random_floats(size_t(T * sh.kv_heads * sh.head_dim), 31);
    const auto v_f = random_floats(k_f.size(), 32), r_f = random_floats(q_f.size(), 33);
    Vec q = to_double(q_f), k = to_double(k_f), v = to_double(v_f), out(q.size()), lse(size_t(T * sh.heads));
    Vec dq(q.size()), dk(k.size()), dv(v.size());
    const Vec r = to_double(r_f);
    ref::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), sh);
    ref::attention_backward(dq.data(), dk.data(), dv.data(), r.data(), q.data(), k.data(), v.data(), out.data(),
                            lse.data(), sh);
    auto objective = [&] {
      Vec o(q.size()), l(lse.size());
      ref::attention_forward(o.data(), l.data(), q.data(), k.data(), v.data(), sh);
      return weighted_sum(r, o.data());
    };
    EXPECT_TRUE(matches_finite_differences(q, dq, objective, kSmooth));
    EXPECT_TRUE(matches_finite_differences(k, dk, objective, kSmooth));
    EXPECT_TRUE(matches_finite_differences(v, dv, objective, kAffine));
    for_each_backend([&](Backend& be) {
      std::vector<float> out_f(q.size()), lse_f(lse.size());
      auto dq_f = zeros(q.size()), dk_f = zeros(k.size()), dv_f = zeros(v.size());
      be.attention_forward(out_f.data(), lse_f.data(), q_f.data(), k_f.data(), v_f.data(), sh);
      be.attention_backward(dq_f.data(), dk_f.data(), dv_f.data(), r_f.data(), q_f.data(), k_f.data(), v_f.data(),
                            out_f.data(), lse_f.data(), sh);
      EXPECT_TRUE(test::all_close(dq_f, dq, kFloatRtol));
      EXPECT_TRUE(test::all_close(dk_f, dk, kFloatRtol));
      EXPECT_TRUE(test::all_close(dv_f, dv, kFloatRtol));
    });
  }
}

// attention_decode has no backward; its double instantiation must reproduce the double forward's
// rows for the new positions (the cache holds the whole sequence), to rounding.
TEST(BackendGrad, AttentionDecodeMatchesForwardInDouble) {
  for (const AttnCase& c : attention_cases()) {
    if (c.shape.batch != 1) continue;
    SCOPED_TRACE(c.name);
    const AttentionShape& sh = c.shape;
    const int64_t T = sh.seq_len, row = sh.heads * sh.head_dim, past = 5, Tn = T - past;
    const Vec q = to_double(random_floats(size_t(T * row), 34));
    const Vec k = to_double(random_floats(size_t(T * sh.kv_heads * sh.head_dim), 35));
    const Vec v = to_double(random_floats(k.size(), 36));
    Vec out(q.size()), lse(size_t(T * sh.heads)), dec(size_t(Tn * row));
    ref::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), sh);
    AttentionShape dsh = sh;
    dsh.seq_len = Tn;
    ref::attention_decode(dec.data(), q.data() + past * row, k.data(), v.data(), past, dsh);
    for (int64_t e = 0; e < Tn * row; ++e) EXPECT_NEAR(dec[size_t(e)], out[size_t(past * row + e)], 1e-14) << e;
  }
}

TEST(BackendGrad, SwiGlu) {
  const int64_t n = 23;
  const auto g_f = random_floats(size_t(n), 40, 2.0f), u_f = random_floats(size_t(n), 41);
  const auto r_f = random_floats(size_t(n), 42);
  Vec g = to_double(g_f), u = to_double(u_f), dg(g.size()), du(u.size());
  const Vec r = to_double(r_f);
  ref::swiglu_backward(dg.data(), du.data(), r.data(), g.data(), u.data(), n);
  auto objective = [&] {
    Vec h(g.size());
    ref::swiglu_forward(h.data(), g.data(), u.data(), n);
    return weighted_sum(r, h.data());
  };
  EXPECT_TRUE(matches_finite_differences(g, dg, objective, kSmooth));
  EXPECT_TRUE(matches_finite_differences(u, du, objective, kAffine));
  for_each_backend([&](Backend& be) {
    auto dg_f = zeros(g.size()), du_f = zeros(u.size());
    be.swiglu_backward(dg_f.data(), du_f.data(), r_f.data(), g_f.data(), u_f.data(), n);
    EXPECT_TRUE(test::all_close(dg_f, dg, kFloatRtol));
    EXPECT_TRUE(test::all_close(du_f, du, kFloatRtol));
  });
}

TEST(BackendGrad, Embedding) {
  const int64_t rows = 5, T = 9, D = 3;
  const std::vector<int32_t> ids = {4, 0, 4, 2, 0, 4, 1, 2, 4};  // repeats; row 3 unused (gradient 0)
  const auto table_f = random_floats(size_t(rows * D), 50), r_f = random_floats(size_t(T * D), 51);
  Vec table = to_double(table_f), dtable(table.size());
  const Vec r = to_double(r_f);
  ref::scatter_add_rows(dtable.data(), r.data(), ids.data(), static_cast<const double*>(nullptr), T, rows, D);
  auto objective = [&] {
    Vec x(r.size());
    ref::embedding_forward(x.data(), table.data(), ids.data(), T, D);
    return weighted_sum(r, x.data());
  };
  EXPECT_TRUE(matches_finite_differences(table, dtable, objective, kAffine));
  for_each_backend([&](Backend& be) {
    auto dtable_f = zeros(table.size());
    be.scatter_add_rows(dtable_f.data(), r_f.data(), ids.data(), nullptr, T, rows, D);
    EXPECT_TRUE(test::all_close(dtable_f, dtable, kFloatRtol));
  });
}

// The objective is dloss·loss: dlogits carries the upstream gradient dloss and the 1/n_counted mean.
TEST(BackendGrad, CrossEntropy) {
  const int64_t T = 5, V = 11;
  const float dloss = 1.7f;
  const std::vector<int32_t> targets = {3, -100, 0, 10, 6};
  const auto logits_f = random_floats(size_t(T * V), 60, 2.0f);
  Vec logits = to_double(logits_f), dlogits(logits.size());
  const double loss = ref::cross_entropy(dlogits.data(), logits.data(), targets.data(), T, V, dloss);
  auto objective = [&] {
    Vec scratch(logits.size());
    return double(dloss) * ref::cross_entropy(scratch.data(), logits.data(), targets.data(), T, V, dloss);
  };
  EXPECT_TRUE(matches_finite_differences(logits, dlogits, objective, kSmooth));
  for_each_backend([&](Backend& be) {
    std::vector<float> dlogits_f(logits.size());
    const double loss_f = be.cross_entropy(dlogits_f.data(), logits_f.data(), targets.data(), T, V, dloss);
    EXPECT_NEAR(loss_f, loss, 1e-6 * loss);
    EXPECT_TRUE(test::all_close(dlogits_f, dlogits, kFloatRtol));
  });
}

// axpy is its own backward: ∂(y + αx)/∂x = α, so dx += α·dy is axpy(dx, dy, α); ∂/∂y = 1.
TEST(BackendGrad, Axpy) {
  const int64_t n = 13;
  const float alpha = -0.37f;
  const auto x_f = random_floats(size_t(n), 70), y_f = random_floats(size_t(n), 71), r_f = random_floats(size_t(n), 72);
  Vec x = to_double(x_f), y = to_double(y_f), dx(x.size());
  const Vec r = to_double(r_f);
  ref::axpy(dx.data(), r.data(), alpha, n);
  auto objective = [&] {
    Vec out = y;
    ref::axpy(out.data(), x.data(), alpha, n);
    return weighted_sum(r, out.data());
  };
  EXPECT_TRUE(matches_finite_differences(x, dx, objective, kAffine));
  EXPECT_TRUE(matches_finite_differences(y, r, objective, kAffine));
  for_each_backend([&](Backend& be) {
    auto dx_f = zeros(x.size());
    be.axpy(dx_f.data(), r_f.data(), alpha, n);
    EXPECT_TRUE(test::all_close(dx_f, dx, kFloatRtol));
  });
}

}  // namespace
}  // namespace upcycle::backend
