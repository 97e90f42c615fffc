// DeepSeek-V3 / dots1 routing (RouterScoring::kSigmoid): hand-computed selection with a bias, group
// limiting (a group scores the sum of its two best biased scores; only topk_group groups are eligible)
// and the routed scaling factor; the sigmoid backend op (hand values, cpu against ref, gradient by
// finite differences); and the whole MoE layer's gradients with sigmoid scores, groups, a bias and an
// ungated shared expert, against central finite differences on both backends.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend.h"
#include "backend/ref/ref_kernels.h"
#include "model/moe_layer.h"
#include "model/moe_routing.h"
#include "support/backend_test_support.h"
#include "support/moe_routing_test_support.h"
#include "support/finite_differences.h"
#include "support/moe_test_support.h"

namespace upcycle::model {
namespace {

using test::route;  // on every registered backend (support/moe_routing_test_support.h)
using test::Routing;

MoeOptions deepseek(int64_t E, int64_t K, int64_t groups, int64_t keep, TopkNorm norm, double scaling) {
  return MoeOptions{.num_experts = E, .top_k = K, .topk_norm = norm, .topk_scaling = scaling,
                    .scoring = RouterScoring::kSigmoid, .n_group = groups, .topk_group = keep};
}

// Scores s (already sigmoids), 8 experts in 4 groups of 2: {0,1} {2,3} {4,5} {6,7}.
const std::vector<float> kScores = {0.90f, 0.10f, 0.60f, 0.55f, 0.70f, 0.65f, 0.20f, 0.85f};

TEST(MoeSigmoidRouting, GroupLimitedTopkByHand) {
  // Group scores (sum of the best two): 1.00, 1.15, 1.35, 1.05 → best two groups {4,5} and {2,3}.
  // Top-2 of the eligible {2,3,4,5}: 4 (0.70) and 5 (0.65); 0 (0.90) and 7 (0.85) are masked out.
  const Routing r = route(kScores.data(), 1, deepseek(8, 2, 4, 2, TopkNorm::kRenormalize, 2.5));
  EXPECT_EQ(r.topk_TK, (std::vector<int32_t>{4, 5}));
  const double sum = double(0.70f) + double(0.65f) + 1e-20;
  EXPECT_NEAR(r.weight[0], 2.5 * double(0.70f) / sum, 1e-6);
  EXPECT_NEAR(r.weight[1], 2.5 * double(0.65f) / sum, 1e-6);
  EXPECT_FLOAT_EQ(r.probability[0], 0.70f);
  // Without groups the plain top-2 wins: 0 and 7, raw weights × the scaling factor.
  const Routing flat = route(kScores.data(), 1, deepseek(8, 2, 1, 1, TopkNorm::kNone, 2.5));
  EXPECT_EQ(flat.topk_TK, (std::vector<int32_t>{0, 7}));
  EXPECT_NEAR(flat.weight[0], 2.5 * double(0.90f), 1e-6);  // assignments in expert order: 0 then 7
  EXPECT_NEAR(flat.weight[1], 2.5 * double(0.85f), 1e-6);
}

TEST(MoeSigmoidRouting, BiasPicksGroupsAndExpertsButNotWeights) {
  // b = +0.5 on expert 1: group {0,1} scores 0.90 + 0.60 = 1.50 and wins (it lost with 1.00 unbiased);
  // with group {4,5} (1.35) the eligible experts are {0,1,4,5}, ranked by s + b: 0.90, 0.60, 0.70, 0.65.
  const std::vector<float> bias = {0.0f, 0.5f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  const Routing r = route(kScores.data(), 1, deepseek(8, 2, 4, 2, TopkNorm::kNone, 1.0), bias.data());
  EXPECT_EQ(r.topk_TK, (std::vector<int32_t>{0, 4}));  // s + b: 0.90, 0.70 beat 0.60 (expert 1) and 0.65
  EXPECT_NEAR(r.weight[0], double(0.90f), 1e-7);  // weights stay s, not s + b
  EXPECT_NEAR(r.weight[1], double(0.70f), 1e-7);
  // A bias large enough to pull expert 7 first: its group {6,7} scores 0.20 + 1.85 and expert 7 leads.
  const std::vector<float> pull = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f};
  const Routing p = route(kScores.data(), 1, deepseek(8, 2, 4, 1, TopkNorm::kNone, 1.0), pull.data());
  EXPECT_EQ(p.topk_TK, (std::vector<int32_t>{7, 6}));  // only group {6,7} is eligible
  EXPECT_NEAR(p.weight[0], double(0.20f), 1e-7);  // expert 6 first in expert order
  EXPECT_NEAR(p.weight[1], double(0.85f), 1e-7);
}

TEST(MoeSigmoidRouting, GroupTiesGoToTheLowerGroup) {
  const std::vector<float> s = {0.5f, 0.5f, 0.5f, 0.5f};
  const Routing r = route(s.data(), 1, deepseek(4, 2, 2, 1, TopkNorm::kNone, 1.0));
  EXPECT_EQ(r.topk_TK, (std::vector<int32_t>{0, 1}));
}

TEST(MoeSigmoidRouting, WeightBackwardThroughRenormalisationAndScaling) {
  // d(Σ g_a w_a)/ds_j with w = c·s/S: finite differences of the routing's own weights (routing fixed).
  const MoeOptions o = deepseek(8, 2, 4, 2, TopkNorm::kRenormalize, 2.5);
  const Routing r = route(kScores.data(), 1, o);
  const std::vector<float> g = {0.3f, -1.1f};
  for (const backend::BackendInfo& info : test::backend_infos()) {
    SCOPED_TRACE(std::string(info.name));
    const std::vector<float> grad = test::route_backward(*backend::make_backend(info.kind), r, g, o);
    for (int32_t j : {4, 5}) {
      auto objective = [&](double delta) {
        std::vector<double> s(kScores.begin(), kScores.end());
        s[size_t(j)] += delta;
        const double S = s[4] + s[5] + 1e-20;
        return 2.5 * (g[0] * s[4] / S + g[1] * s[5] / S);
      };
      EXPECT_NEAR(grad[size_t(j)], (objective(1e-6) - objective(-1e-6)) / 2e-6, 1e-6) << j;
    }
    EXPECT_EQ(grad[0], 0.0f);  // masked-out experts get nothing
  }
}

class SigmoidOp : public ::testing::TestWithParam<backend::BackendKind> {
 protected:
  std::unique_ptr<backend::Backend> be_ = backend::make_backend(GetParam());
};

TEST_P(SigmoidOp, HandValuesAndBackward) {
  const std::vector<float> z = {0.0f, 2.0f, -3.0f, 40.0f, -120.0f};
  std::vector<float> s(z.size());
  be_->sigmoid_forward(s.data(), z.data(), int64_t(z.size()));
  EXPECT_FLOAT_EQ(s[0], 0.5f);
  EXPECT_FLOAT_EQ(s[1], float(1.0 / (1.0 + std::exp(-2.0))));
  EXPECT_FLOAT_EQ(s[2], float(1.0 / (1.0 + std::exp(3.0))));
  EXPECT_FLOAT_EQ(s[3], 1.0f);
  EXPECT_EQ(s[4], 0.0f);  // 7.7e-53 underflows to 0, never NaN
  // Backward accumulates: dz = 1 + ds·σ(1−σ).
  std::vector<float> ds = {2.0f, -1.0f, 0.5f, 1.0f, 1.0f}, dz(z.size(), 1.0f);
  be_->sigmoid_backward(dz.data(), ds.data(), s.data(), int64_t(z.size()));
  EXPECT_FLOAT_EQ(dz[0], 1.0f + 2.0f * 0.25f);
  EXPECT_NEAR(dz[1], 1.0 - double(s[1]) * (1.0 - double(s[1])), 1e-7);
  // Against finite differences of the double reference kernel.
  for (size_t i = 0; i < 3; ++i) {
    double zp = double(z[i]) + 1e-6, zm = double(z[i]) - 1e-6, sp, sm;
    backend::ref::sigmoid_forward(&sp, &zp, 1);
    backend::ref::sigmoid_forward(&sm, &zm, 1);
    EXPECT_NEAR(dz[i] - 1.0f, ds[i] * (sp - sm) / 2e-6, 1e-6) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, SigmoidOp,
                         ::testing::ValuesIn(test::backend_kinds()),
                         test::BackendTestName());

// --- whole layer, finite differences (the pattern of moe_layer_grad_test.cpp) ---
constexpr int64_t T = 7, D = 6, E = 8, F = 5, Fs = 3;

std::vector<double> sigmoid_scores(const std::vector<float>& x, const std::vector<float>& router) {
  std::vector<double> s(size_t(T * E));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t e = 0; e < E; ++e) {
      double l = 0.0;
      for (int64_t d = 0; d < D; ++d) l += double(x[size_t(t * D + d)]) * router[size_t(e * D + d)];
      s[size_t(t * E + e)] = 1.0 / (1.0 + std::exp(-l));
    }
  return s;
}

// Smallest gap of any decision: the kept groups against the next group, the top-k of the eligible
// experts against the next eligible one (s + b throughout).
double deepseek_margin(const std::vector<double>& s, const std::vector<float>& bias, const MoeOptions& o) {
  const int64_t per = E / o.n_group;
  double margin = INFINITY;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> rank(static_cast<size_t>(E)), group(static_cast<size_t>(o.n_group));
    for (int64_t e = 0; e < E; ++e) rank[size_t(e)] = s[size_t(t * E + e)] + bias[size_t(e)];
    for (int64_t g = 0; g < o.n_group; ++g) {
      std::vector<double> v(rank.begin() + g * per, rank.begin() + (g + 1) * per);
      std::sort(v.begin(), v.end(), std::greater<>());
      group[size_t(g)] = v[0] + v[1];
    }
    std::vector<double> sorted = group;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    if (o.topk_group < o.n_group)
      margin = std::min(margin, sorted[size_t(o.topk_group - 1)] - sorted[size_t(o.topk_group)]);
    std::vector<double> eligible;
    for (int64_t e = 0; e < E; ++e)
      if (group[size_t(e / per)] >= sorted[size_t(o.topk_group - 1)]) eligible.push_back(rank[size_t(e)]);
    std::sort(eligible.begin(), eligible.end(), std::greater<>());
    margin = std::min(margin, eligible[size_t(o.top_k - 1)] - eligible[size_t(o.top_k)]);
  }
  return margin;
}

class SigmoidMoeLayerGrad : public ::testing::TestWithParam<backend::BackendKind> {
 protected:
  std::unique_ptr<backend::Backend> be_ = backend::make_backend(GetParam());
};

TEST_P(SigmoidMoeLayerGrad, MatchesFiniteDifferences) {
  for (const TopkNorm norm : {TopkNorm::kRenormalize, TopkNorm::kNone}) {
    SCOPED_TRACE(norm == TopkNorm::kRenormalize ? "renormalised" : "raw");
    const MoeOptions o = deepseek(E, 3, 4, 2, norm, 2.5);
    const std::vector<float> bias = {0.05f, -0.1f, 0.0f, 0.2f, -0.05f, 0.1f, 0.0f, -0.2f};
    test::MoeBuffers w(E, D, F, Fs, /*gated=*/false);
    MoeLayer layer(*be_, o, MoeDims{.hidden = D, .expert_width = F, .shared_width = Fs});
    std::vector<float> x, y(size_t(T * D));
    uint64_t seed = 0;
    for (uint64_t s = 1; s < 500 && seed == 0; ++s) {
      w.randomize(s, 2.0f);
      x = test::random_floats(size_t(T * D), s, 1.0f, "x");
      if (deepseek_margin(sigmoid_scores(x, w.router), bias, o) >= 0.02) seed = s;
    }
    ASSERT_NE(seed, 0u) << "no seed with well-separated routing";
    const auto r = test::random_floats(size_t(T * D), seed, 1.0f, "r");
    auto weights = [&] {
      MoeWeights mw = w.weights();
      mw.selection_bias_E = bias.data();
      return mw;
    };
    layer.forward(y.data(), x.data(), T, weights(), Phase::kTraining, 0);
    EXPECT_EQ(layer.stats().aux_loss, 0.0);  // sigmoid scoring: no aux, no z loss
    EXPECT_EQ(layer.stats().z_loss, 0.0);
    const std::vector<int64_t> routed = layer.stats().tokens_per_expert;
    test::MoeBuffers g(E, D, F, Fs, false);
    std::vector<float> dx(x.size(), 0.0f);
    MoeGrads grads = g.grads();
    layer.backward(dx.data(), grads, r.data(), x.data(), weights());
    bool routing_changed = false;
    auto objective = [&] {
      layer.forward(y.data(), x.data(), T, weights(), Phase::kTraining, 0);
      routing_changed |= layer.stats().tokens_per_expert != routed;
      return test::weighted_sum(r, y.data());
    };
    auto check = [&](const char* what, std::vector<float>& param, const std::vector<float>& grad) {
      EXPECT_TRUE(test::matches_finite_differences(param, grad, objective, 1e-3f, 2e-3)) << what;
    };
    check("router", w.router, g.router);
    check("gate", w.gate, g.gate);
    check("down", w.down, g.down);
    check("shared up", w.s_up, g.s_up);
    check("x", x, dx);
    EXPECT_FALSE(routing_changed) << "a finite-difference step changed the routing";
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, SigmoidMoeLayerGrad,
                         ::testing::ValuesIn(test::fp32_backend_kinds()),
                         test::BackendTestName());

}  // namespace
}  // namespace upcycle::model
