// Hand-computed cases for each op on every registered backend: values worked out on paper or from a direct
// formula, so a shared misunderstanding of the contract (which cpu-vs-ref cannot catch) shows up.
// Also the accumulate contract: a backward called twice on the same inputs doubles every gradient.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend.h"
#include "support/backend_test_support.h"

namespace upcycle::backend {
namespace {

using test::all_close;
using test::random_floats;

class BackendOpCases : public ::testing::TestWithParam<BackendKind> {
 protected:
  std::unique_ptr<Backend> be_ = make_backend(GetParam());
};

TEST_P(BackendOpCases, LinearTwoByTwo) {
  // x = [[1,2],[3,4]], w = [[1,0],[1,1]] ([out,in]), b = [0.5,-1]: y = x·wᵀ + b.
  const std::vector<float> x = {1, 2, 3, 4}, w = {1, 0, 1, 1}, b = {0.5f, -1};
  std::vector<float> y(4);
  be_->linear_forward(y.data(), x.data(), w.data(), b.data(), 2, 2, 2);
  EXPECT_EQ(y, (std::vector<float>{1.5f, 2, 3.5f, 6}));
  const std::vector<float> dy = {1, 0, 0, 1};  // identity: dx = w, dw = x, db = [1,1]
  std::vector<float> dx(4, 0.0f), dw(4, 0.0f), db(2, 0.0f);
  be_->linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), 2, 2, 2);
  EXPECT_EQ(dx, w);
  EXPECT_EQ(dw, x);
  EXPECT_EQ(db, (std::vector<float>{1, 1}));
}

TEST_P(BackendOpCases, RmsNormKnownVector) {
  // x = [3,4]: mean(x²) = 12.5, rstd = 1/√12.5; w = [1,2].
  const std::vector<float> x = {3, 4}, w = {1, 2};
  std::vector<float> y(2), rstd(1);
  be_->rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), 1, 2, 0.0f);
  const double r = 1.0 / std::sqrt(12.5);
  EXPECT_NEAR(rstd[0], r, 1e-7);
  EXPECT_NEAR(y[0], 3 * r, 1e-6);
  EXPECT_NEAR(y[1], 8 * r, 1e-6);
}

TEST_P(BackendOpCases, RopeMatchesDirectFormula) {
  const int64_t seq_len = 5, T = 10, H = 1, S = 4, offset = 7;
  const std::vector<float> inv_freq = {1.0f, 0.01f};
  const auto x = random_floats(size_t(T * H * S), 70);
  auto y = x;
  be_->rope(y.data(), inv_freq.data(), T, seq_len, H, S, offset, RopeDirection::kForward);
  const int64_t t = 8;  // second sequence, position 3 → angle uses 3 + offset
  for (int64_t i = 0; i < S / 2; ++i) {
    const double angle = double(3 + offset) * inv_freq[size_t(i)];
    const double a = x[size_t(t * S + i)], b = x[size_t(t * S + i + 2)];
    EXPECT_NEAR(y[size_t(t * S + i)], a * std::cos(angle) - b * std::sin(angle), 1e-6);
    EXPECT_NEAR(y[size_t(t * S + i + 2)], b * std::cos(angle) + a * std::sin(angle), 1e-6);
  }
  be_->rope(y.data(), inv_freq.data(), T, seq_len, H, S, offset, RopeDirection::kInverse);  // undoes it
  EXPECT_TRUE(all_close(y, x, 1e-6));
}

TEST_P(BackendOpCases, AttentionSingleTokenReturnsVAndMapsGqaHeads) {
  // T=1: the only visible key is itself, so out = v of the kv head h / (H/KV); lse = scale·q·k.
  const AttentionShape sh{.batch = 1, .seq_len = 1, .heads = 4, .kv_heads = 2, .head_dim = 3, .scale = 0.5f};
  const auto q = random_floats(12, 80), k = random_floats(6, 81), v = random_floats(6, 82);
  std::vector<float> out(12), lse(4);
  be_->attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), sh);
  for (int64_t h = 0; h < 4; ++h) {
    const int64_t kvh = h / 2;
    double qk = 0;
    for (int64_t s = 0; s < 3; ++s) {
      EXPECT_FLOAT_EQ(out[size_t(h * 3 + s)], v[size_t(kvh * 3 + s)]) << "head " << h;
      qk += double(q[size_t(h * 3 + s)]) * k[size_t(kvh * 3 + s)];
    }
    EXPECT_NEAR(lse[size_t(h)], 0.5 * qk, 1e-6);
  }
}

// q = 0 makes every score equal, so out_i is the plain mean of the visible v_j and lse = log(#visible).
void expect_mean_of_visible(Backend& be, int64_t window) {
  const int64_t Tseq = 7, B = 2, S = 2;
  const AttentionShape sh{.batch = B, .seq_len = Tseq, .heads = 2, .kv_heads = 1, .head_dim = S, .window = window,
                          .scale = 1.0f};
  const std::vector<float> q(size_t(B * Tseq * 2 * S), 0.0f);
  const auto k = random_floats(size_t(B * Tseq * S), 90), v = random_floats(size_t(B * Tseq * S), 91);
  std::vector<float> out(q.size()), lse(size_t(B * Tseq * 2));
  be.attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), sh);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < Tseq; ++i) {
      const int64_t j0 = window > 0 ? std::max<int64_t>(0, i - window + 1) : 0;
      for (int64_t h = 0; h < 2; ++h) {
        EXPECT_NEAR(lse[size_t((b * Tseq + i) * 2 + h)], std::log(double(i - j0 + 1)), 1e-6);
        for (int64_t s = 0; s < S; ++s) {
          double mean = 0;
          for (int64_t j = j0; j <= i; ++j) mean += v[size_t((b * Tseq + j) * S + s)];
          mean /= double(i - j0 + 1);
          EXPECT_NEAR(out[size_t(((b * Tseq + i) * 2 + h) * S + s)], mean, 1e-6) << "b=" << b << " i=" << i;
        }
      }
    }
  }
}

TEST_P(BackendOpCases, AttentionEqualScoresAverageVisibleValues) {
  expect_mean_of_visible(*be_, 0);
  expect_mean_of_visible(*be_, 3);
  expect_mean_of_visible(*be_, 1);  // window 1: each query sees only itself
}

TEST_P(BackendOpCases, AttentionSlidingWindowVisibility) {
  // Changing key/value j changes out_i iff i − window < j ≤ i (and never across sequences).
  const int64_t Tseq = 8, window = 3, i = 6;
  const AttentionShape sh{.batch = 2, .seq_len = Tseq, .heads = 1, .kv_heads = 1, .head_dim = 4, .window = window,
                          .scale = 0.5f};
  const auto q = random_floats(size_t(2 * Tseq * 4), 100);
  const auto k = random_floats(q.size(), 101), v = random_floats(q.size(), 102);
  std::vector<float> base(q.size()), lse(size_t(2 * Tseq));
  be_->attention_forward(base.data(), lse.data(), q.data(), k.data(), v.data(), sh);
  for (int64_t j = 0; j < 2 * Tseq; ++j) {
    auto k2 = k, v2 = v;
    for (int64_t s = 0; s < 4; ++s) k2[size_t(j * 4 + s)] += 1.0f, v2[size_t(j * 4 + s)] += 1.0f;
    std::vector<float> out(q.size());
    be_->attention_forward(out.data(), lse.data(), q.data(), k2.data(), v2.data(), sh);
    const bool visible = j > i - window && j <= i;  // query i of sequence 0
    const bool changed = !std::equal(out.begin() + i * 4, out.begin() + i * 4 + 4, base.begin() + i * 4);
    EXPECT_EQ(changed, visible) << "key " << j;
  }
}

TEST_P(BackendOpCases, CrossEntropyUniformLogitsIsLogV) {
  const int64_t T = 3, V = 11;
  const std::vector<float> logits(size_t(T * V), 2.5f);
  const std::vector<int32_t> targets = {0, 10, 4};
  std::vector<float> dlogits(logits.size());
  EXPECT_NEAR(be_->cross_entropy(dlogits.data(), logits.data(), targets.data(), T, V, 1.0f), std::log(11.0), 1e-6);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < V; ++c) {
      const double want = (1.0 / V - (c == targets[size_t(t)] ? 1.0 : 0.0)) / T;
      EXPECT_NEAR(dlogits[size_t(t * V + c)], want, 1e-7);
    }
  }
}

TEST_P(BackendOpCases, CrossEntropyIgnoredTargets) {
  const int64_t T = 4, V = 5;
  const auto logits = random_floats(size_t(T * V), 110, 3.0f);
  // Rows 1 and 3 ignored: the loss is the mean over rows 0 and 2 only, and their rows of dlogits are 0.
  const std::vector<int32_t> some = {2, -100, 4, -1};
  std::vector<float> dlogits(logits.size(), 7.0f);
  const double loss = be_->cross_entropy(dlogits.data(), logits.data(), some.data(), T, V, 1.0f);
  auto row_loss = [&](int64_t t, int32_t target) {
    double denom = 0;
    for (int64_t c = 0; c < V; ++c) denom += std::exp(double(logits[size_t(t * V + c)]));
    return std::log(denom) - logits[size_t(t * V + target)];
  };
  EXPECT_NEAR(loss, (row_loss(0, 2) + row_loss(2, 4)) / 2, 1e-6);
  for (int64_t c = 0; c < V; ++c) {
    EXPECT_EQ(dlogits[size_t(1 * V + c)], 0.0f);
    EXPECT_EQ(dlogits[size_t(3 * V + c)], 0.0f);
  }
  // Every target ignored: loss 0, every gradient 0 (no division by zero).
  const std::vector<int32_t> none = {-100, -100, -1, -100};
  std::fill(dlogits.begin(), dlogits.end(), 7.0f);
  EXPECT_EQ(be_->cross_entropy(dlogits.data(), logits.data(), none.data(), T, V, 1.0f), 0.0);
  for (float d : dlogits) EXPECT_EQ(d, 0.0f);
}

TEST_P(BackendOpCases, SwiGluAtZeroAndLargeInputs) {
  const std::vector<float> g = {0.0f, 100.0f, -100.0f, 1e4f, -1e4f}, u = {3.0f, 2.0f, 2.0f, 1.0f, 1.0f};
  const std::vector<float> dh(5, 1.0f);
  std::vector<float> h(5), dg(5, 0.0f), du(5, 0.0f);
  be_->swiglu_forward(h.data(), g.data(), u.data(), 5);
  be_->swiglu_backward(dg.data(), du.data(), dh.data(), g.data(), u.data(), 5);
  EXPECT_EQ(h[0], 0.0f);
  EXPECT_FLOAT_EQ(dg[0], 1.5f);  // silu'(0) = σ(0) = ½, times u = 3
  EXPECT_EQ(du[0], 0.0f);
  EXPECT_FLOAT_EQ(h[1], 200.0f);  // silu(z) → z for large z; silu'(z) → 1
  EXPECT_FLOAT_EQ(dg[1], 2.0f);
  EXPECT_FLOAT_EQ(du[1], 100.0f);
  EXPECT_FLOAT_EQ(h[3], 1e4f);
  // silu(z) → 0 for very negative z (−100·e^−100 ≈ −4e−42 is a denormal, or 0 where exp overflows),
  // and never NaN from inf·0.
  for (int e : {2, 4}) {
    for (float value : {h[size_t(e)], dg[size_t(e)], du[size_t(e)]}) {
      EXPECT_TRUE(std::isfinite(value)) << e;
      EXPECT_NEAR(value, 0.0f, 1e-30f) << e;
    }
  }
}

TEST_P(BackendOpCases, EmbeddingGathersAndScattersRows) {
  const std::vector<float> table = {0, 1, 10, 11, 20, 21};  // 3 rows, D = 2
  const std::vector<int32_t> ids = {2, 0, 2};
  std::vector<float> x(6);
  be_->embedding_forward(x.data(), table.data(), ids.data(), 3, 2);
  EXPECT_EQ(x, (std::vector<float>{20, 21, 0, 1, 20, 21}));
  const std::vector<float> dx = {1, 2, 3, 4, 5, 6};
  std::vector<float> dtable(6, 0.5f);
  be_->scatter_add_rows(dtable.data(), dx.data(), ids.data(), nullptr, 3, 3, 2);  // the backward
  EXPECT_EQ(dtable, (std::vector<float>{3.5f, 4.5f, 0.5f, 0.5f, 6.5f, 8.5f}));
}

TEST_P(BackendOpCases, AxpyAccumulates) {
  std::vector<float> y = {1, 2, 3};
  const std::vector<float> x = {1, -1, 0.5f};
  be_->axpy(y.data(), x.data(), 2.0f, 3);
  EXPECT_EQ(y, (std::vector<float>{3, 0, 4}));
}

// Backward twice into zeroed buffers gives twice the gradients of one call: += never overwrites.
TEST_P(BackendOpCases, BackwardTwiceDoublesGradients) {
  auto twice_is_double = [](const std::function<void(std::vector<std::vector<float>>&)>& backward,
                            std::vector<std::vector<float>> zeros) {
    auto once = zeros, two = zeros;
    backward(once);
    backward(two);
    backward(two);
    for (size_t i = 0; i < once.size(); ++i) {
      for (float& e : once[i]) e *= 2.0f;
      EXPECT_TRUE(all_close(two[i], once[i], 1e-6)) << "gradient " << i;
      EXPECT_GT(test::max_abs(once[i]), 0.0) << "gradient " << i;
    }
  };
  const int64_t M = 7, K = 33, N = 13, B = 2, Tseq = 10, H = 6, KV = 2, S = 10;
  const auto x = random_floats(size_t(M * K), 120), w = random_floats(size_t(N * K), 121);
  const auto dy = random_floats(size_t(M * N), 122), dyk = random_floats(x.size(), 123);
  twice_is_double([&](auto& g) {
    be_->linear_backward(g[0].data(), g[1].data(), g[2].data(), dy.data(), x.data(), w.data(), M, K, N);
  }, {std::vector<float>(x.size()), std::vector<float>(w.size()), std::vector<float>(size_t(N))});

  std::vector<float> y(x.size()), rstd(static_cast<size_t>(M));
  be_->rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), M, K, 1e-6f);
  twice_is_double([&](auto& g) {
    be_->rmsnorm_backward(g[0].data(), g[1].data(), dyk.data(), x.data(), w.data(), rstd.data(), M, K);
  }, {std::vector<float>(x.size()), std::vector<float>(size_t(K))});

  const AttentionShape sh{B, Tseq, H, KV, S, 3, 0.3f};
  const auto q = random_floats(size_t(B * Tseq * H * S), 124), k = random_floats(size_t(B * Tseq * KV * S), 125);
  const auto v = random_floats(k.size(), 126), dout = random_floats(q.size(), 127);
  std::vector<float> out(q.size()), lse(size_t(B * Tseq * H));
  be_->attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), sh);
  twice_is_double([&](auto& g) {
    be_->attention_backward(g[0].data(), g[1].data(), g[2].data(), dout.data(), q.data(), k.data(), v.data(),
                            out.data(), lse.data(), sh);
  }, {std::vector<float>(q.size()), std::vector<float>(k.size()), std::vector<float>(v.size())});

  twice_is_double([&](auto& g) {
    be_->swiglu_backward(g[0].data(), g[1].data(), dyk.data(), x.data(), w.data(), int64_t(x.size()));
  }, {std::vector<float>(x.size()), std::vector<float>(x.size())});

  const std::vector<int32_t> ids = {3, 1, 3, 0, 6, 6, 2};
  twice_is_double([&](auto& g) { be_->scatter_add_rows(g[0].data(), x.data(), ids.data(), nullptr, 7, 7, K); },
                  {std::vector<float>(size_t(7 * K))});
}

// The optimizer ops by hand. AdamW at t = 2 with β1 = 1/2, β2 = 3/4, lr = 0.075, wd = 0.2, from
// m = 1/4, v = 1/16 and g = 1/2 (all exact in binary):
//   m = ½·¼ + ½·½ = 0.375;  v = ¾·(1/16) + ¼·¼ = 0.109375;  m̂ = m/(1 − ¼) = ½;  v̂ = v/(1 − 9/16) = ¼
//   p = 1·(1 − 0.075·0.2) − 0.075·½/(√¼ + ε) = 0.985 − 0.075 = 0.91 (decayed), 1 − 0.075 = 0.925 (not),
// over ranges [0,1) decayed, [1,1) empty, [1,2) not decayed.
TEST_P(BackendOpCases, AdamWStepByHand) {
  const std::vector<int64_t> offsets = {0, 1, 1, 2};
  const std::vector<uint8_t> decay = {1, 1, 0};
  std::vector<float> p = {1, 1}, m = {0.25f, 0.25f}, v = {0.0625f, 0.0625f};
  const std::vector<float> g = {0.5f, 0.5f};
  const double lr = 0.075, beta1 = 0.5, beta2 = 0.75;
  Backend::AdamWScalars s{.beta1 = beta1, .beta2 = beta2, .eps = 1e-8};
  s.step_size = lr / (1 - beta1 * beta1);
  s.bias_correction2_sqrt = std::sqrt(1 - beta2 * beta2);
  s.decay_keep = 1 - lr * 0.2;
  be_->adamw_step(p.data(), m.data(), v.data(), g.data(), offsets.data(), decay.data(), 3, s);
  EXPECT_EQ(m, (std::vector<float>{0.375f, 0.375f}));
  EXPECT_EQ(v, (std::vector<float>{0.109375f, 0.109375f}));
  EXPECT_FLOAT_EQ(p[0], 0.91f);
  EXPECT_FLOAT_EQ(p[1], 0.925f);
}

// ‖(1, 2, 2, 4)‖ = 5 and ‖(3, −4)‖ = 5 exactly; 70000 ones (two cpu chunks and a tail) give √70000.
// Clipping (3, −4) to norm 1 with two micro-batches averaged: factor = (1/5)/2 = 0.1.
TEST_P(BackendOpCases, GradNormAndClipScalingByHand) {
  const std::vector<float> a = {1, 2, 2, 4};
  EXPECT_EQ(be_->l2_norm(a.data(), 4), 5.0);
  std::vector<float> g = {3, -4};
  EXPECT_EQ(be_->l2_norm(g.data(), 2), 5.0);
  const std::vector<float> ones(70000, 1.0f);
  EXPECT_EQ(be_->l2_norm(ones.data(), 70000), std::sqrt(70000.0));
  be_->scale(g.data(), 1.0 / 5.0 / 2.0, 2);
  EXPECT_EQ(g, (std::vector<float>{0.3f, -0.4f}));
  EXPECT_EQ(be_->l2_norm(g.data(), 0), 0.0);
}

// Loads (5, 1, 3, 3), mean 3: the overloaded expert's bias drops by γ, the underloaded one's rises,
// experts at the mean stay.
TEST_P(BackendOpCases, ExpertBiasUpdateByHand) {
  std::vector<float> bias = {0.5f, -0.25f, 0.0f, 1.0f};
  const std::vector<int64_t> load = {5, 1, 3, 3};
  be_->expert_bias_update(bias.data(), load.data(), 4, 0.125);
  EXPECT_EQ(bias, (std::vector<float>{0.375f, -0.125f, 0.0f, 1.0f}));
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendOpCases, ::testing::ValuesIn(test::backend_kinds()),
                         test::BackendTestName());

}  // namespace
}  // namespace upcycle::backend
