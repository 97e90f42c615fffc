// The pure routing decision and router losses on hand-built probability tables: top-k order and
// ties, renormalised vs raw weights and the scaling factor, capacity dropping exactly the
// lowest-probability assignments of an overloaded expert (weights not renormalised afterwards), expert
// choice (tokens with 0 and with several experts), capacities, the aux loss (1 under perfect balance,
// K·L_aux = HF's load_balancing_loss_func computed by hand) and the z loss.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend.h"
#include "model/moe_routing.h"
#include "support/backend_test_support.h"
#include "support/moe_routing_test_support.h"

namespace upcycle::model {
namespace {

// Every decision and loss below runs on every registered backend (support/moe_routing_test_support.h).
using test::aux_loss;
using test::route;
using test::Routing;
using test::z_loss;

MoeOptions token_choice(int64_t E, int64_t K, TopkNorm norm, double scaling = 1.0, double cf = 0.0) {
  return MoeOptions{.num_experts = E, .top_k = K, .topk_norm = norm, .topk_scaling = scaling,
                    .capacity_factor = cf};
}

// Probabilities in float, ratios computed the way a reader would: in double from those floats.
double ratio(float a, float b, float c) { return double(a) / (double(b) + double(c)); }

TEST(MoeRouting, TopkOrderTiesAndRenormalisation) {
  const std::vector<float> p = {0.1f, 0.4f, 0.2f, 0.3f,     // t0: experts 1 then 3
                                0.3f, 0.3f, 0.3f, 0.1f,     // t1: three-way tie → 0, 1
                                0.25f, 0.25f, 0.25f, 0.25f};  // t2: all equal → 0, 1
  const Routing r = route(p.data(), 3, token_choice(4, 2, TopkNorm::kRenormalize));
  EXPECT_EQ(r.topk_TK, (std::vector<int32_t>{1, 3, 0, 1, 0, 1}));
  EXPECT_EQ(r.offsets, (std::vector<int64_t>{0, 2, 5, 5, 6}));  // expert 2 gets nothing
  EXPECT_EQ(r.token, (std::vector<int32_t>{1, 2, 0, 1, 2, 0}));
  EXPECT_EQ(r.expert, (std::vector<int32_t>{0, 0, 1, 1, 1, 3}));
  EXPECT_EQ(r.counts_E, (std::vector<int64_t>{2, 3, 0, 1}));
  EXPECT_EQ(r.assignments, 6);
  EXPECT_EQ(r.dropped, 0);
  const std::vector<double> want = {0.5, 0.5, ratio(0.4f, 0.4f, 0.3f), 0.5, 0.5, ratio(0.3f, 0.4f, 0.3f)};
  for (size_t a = 0; a < want.size(); ++a) EXPECT_NEAR(r.weight[a], want[a], 1e-7) << a;
  EXPECT_FLOAT_EQ(r.probability[2], 0.4f);
  EXPECT_FLOAT_EQ(r.probability[5], 0.3f);
}

TEST(MoeRouting, RawWeightsAndScaling) {
  const std::vector<float> p = {0.1f, 0.4f, 0.2f, 0.3f};
  const Routing raw = route(p.data(), 1, token_choice(4, 2, TopkNorm::kNone, 2.5));
  EXPECT_EQ(raw.expert, (std::vector<int32_t>{1, 3}));
  EXPECT_NEAR(raw.weight[0], 2.5 * 0.4, 1e-6);
  EXPECT_NEAR(raw.weight[1], 2.5 * 0.3, 1e-6);
  const Routing renorm = route(p.data(), 1, token_choice(4, 2, TopkNorm::kRenormalize, 2.0));
  EXPECT_NEAR(renorm.weight[0], 2.0 * ratio(0.4f, 0.4f, 0.3f), 1e-6);
  EXPECT_NEAR(renorm.weight[1], 2.0 * ratio(0.3f, 0.4f, 0.3f), 1e-6);
}

TEST(MoeRouting, CapacityDropsLowestProbabilityAssignments) {
  // T=6, E=2, K=1, cf=1 → C = 3. Five tokens want expert 0: keep 0.9, 0.8, 0.7; drop 0.6 and 0.55.
  const std::vector<float> p = {0.9f, 0.1f, 0.6f, 0.4f, 0.8f, 0.2f, 0.7f, 0.3f, 0.55f, 0.45f, 0.2f, 0.8f};
  const Routing r = route(p.data(), 6, token_choice(2, 1, TopkNorm::kRenormalize, 1.0, 1.0));
  EXPECT_EQ(r.offsets, (std::vector<int64_t>{0, 3, 4}));
  EXPECT_EQ(r.token, (std::vector<int32_t>{0, 2, 3, 5}));
  EXPECT_EQ(r.expert, (std::vector<int32_t>{0, 0, 0, 1}));
  EXPECT_EQ(r.counts_E, (std::vector<int64_t>{5, 1}));  // before dropping
  EXPECT_EQ(r.assignments, 6);
  EXPECT_EQ(r.dropped, 2);
}

TEST(MoeRouting, CapacityWithTopTwoKeepsWeightsAndBreaksTiesByToken) {
  // T=3, E=3, K=2, cf=0.5 → C = ceil(3·2/3·0.5) = 1 per expert.
  const std::vector<float> p = {0.5f, 0.3f, 0.2f,   // t0: {0, 1}
                                0.6f, 0.1f, 0.3f,   // t1: {0, 2}
                                0.2f, 0.5f, 0.3f};  // t2: {1, 2}
  const Routing r = route(p.data(), 3, token_choice(3, 2, TopkNorm::kRenormalize, 1.0, 0.5));
  // expert 0: t1 (0.6) beats t0 (0.5); expert 1: t2 (0.5) beats t0 (0.3); expert 2: t1 and t2 tie at 0.3 → t1.
  EXPECT_EQ(r.token, (std::vector<int32_t>{1, 2, 1}));
  EXPECT_EQ(r.expert, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(r.dropped, 3);
  // Weights keep the pre-drop renormalisation (Megatron): t1's two kept weights still sum to 1,
  // t2 keeps only 0.5/0.8 of its mass, t0 gets nothing.
  EXPECT_NEAR(r.weight[0], ratio(0.6f, 0.6f, 0.3f), 1e-7);
  EXPECT_NEAR(r.weight[1], ratio(0.5f, 0.5f, 0.3f), 1e-7);
  EXPECT_NEAR(r.weight[2], ratio(0.3f, 0.6f, 0.3f), 1e-7);
}

TEST(MoeRouting, Capacities) {
  EXPECT_EQ(token_choice_capacity(6, 1, 2, 1.0), 3);
  EXPECT_EQ(token_choice_capacity(7, 2, 4, 1.25), 5);  // ceil(4.375)
  EXPECT_EQ(token_choice_capacity(7, 2, 4, 0.75), 3);  // ceil(2.625)
  EXPECT_EQ(expert_choice_capacity(8, 4, 1.0), 2);
  EXPECT_EQ(expert_choice_capacity(5, 4, 1.0), 2);     // ceil(1.25)
  EXPECT_EQ(expert_choice_capacity(3, 2, 10.0), 3);    // at most every token
}

TEST(MoeRouting, ExpertChoicePicksEachExpertsTopTokens) {
  // T=3, E=3, cf=1 → C=1. Expert 0 and expert 1 (tie 0.3 vs 0.3 → lower token) both take t0; expert 2
  // takes t2; t1 gets no expert.
  const std::vector<float> p = {0.6f, 0.3f, 0.1f, 0.2f, 0.3f, 0.5f, 0.1f, 0.2f, 0.7f};
  const MoeOptions o{.num_experts = 3, .mode = RoutingMode::kExpertChoice, .capacity_factor = 1.0};
  const Routing r = route(p.data(), 3, o);
  EXPECT_EQ(r.offsets, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(r.token, (std::vector<int32_t>{0, 0, 2}));
  EXPECT_EQ(r.expert, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(r.weight, (std::vector<float>{0.6f, 0.3f, 0.7f}));
  EXPECT_EQ(r.counts_E, (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(r.assignments, 3);
  EXPECT_EQ(r.dropped, 0);

  // C=2: picked by probability, stored in token order.
  const std::vector<float> q = {0.2f, 0.8f, 0.9f, 0.1f, 0.6f, 0.4f, 0.5f, 0.5f};
  const MoeOptions o2{.num_experts = 2, .mode = RoutingMode::kExpertChoice, .capacity_factor = 1.0};
  const Routing r2 = route(q.data(), 4, o2);
  EXPECT_EQ(r2.token, (std::vector<int32_t>{1, 2, 0, 3}));
  EXPECT_EQ(r2.weight, (std::vector<float>{0.9f, 0.6f, 0.8f, 0.5f}));
}

TEST(MoeRouterLoss, AuxLossIsOneUnderPerfectBalance) {
  // Cyclic shifts: every expert is top-1 (and top-2) equally often and P_e = 1/E.
  std::vector<float> k1, k2;
  for (int64_t t = 0; t < 4; ++t) {
    for (int64_t e = 0; e < 4; ++e) {
      const int64_t shift = (e - t + 4) % 4;
      k1.push_back(shift == 0 ? 0.7f : 0.1f);
      k2.push_back(shift <= 1 ? 0.4f : 0.1f);
    }
  }
  const Routing r1 = route(k1.data(), 4, token_choice(4, 1, TopkNorm::kNone));
  EXPECT_NEAR(aux_loss(k1.data(), 4, 4, r1.counts_E), 1.0, 1e-6);
  const Routing r2 = route(k2.data(), 4, token_choice(4, 2, TopkNorm::kNone));
  EXPECT_EQ(r2.counts_E, (std::vector<int64_t>{2, 2, 2, 2}));
  EXPECT_NEAR(aux_loss(k2.data(), 4, 4, r2.counts_E), 1.0, 1e-6);
}

TEST(MoeRouterLoss, AuxLossTimesKEqualsHfLoadBalancingLoss) {
  const std::vector<float> p = {0.5f, 0.3f, 0.2f, 0.1f, 0.6f, 0.3f, 0.5f, 0.3f, 0.2f};  // T=3, E=3, K=2
  const Routing r = route(p.data(), 3, token_choice(3, 2, TopkNorm::kRenormalize));
  EXPECT_EQ(r.counts_E, (std::vector<int64_t>{2, 3, 1}));
  // HF: E · Σ_k Σ_e mean_t(onehot(topk slot k) = e) · mean_t p[t,e], slot by slot:
  //   slot 0 (top-1): t0→0, t1→1, t2→0 → fractions (2/3, 1/3, 0)
  //   slot 1 (top-2): t0→1, t1→2, t2→1 → fractions (0, 2/3, 1/3); P = (1.1, 1.2, 0.7)/3.
  const double P0 = 1.1 / 3, P1 = 1.2 / 3, P2 = 0.7 / 3;
  const double hf = 3.0 * ((2.0 / 3) * P0 + (1.0 / 3) * P1 + (2.0 / 3) * P1 + (1.0 / 3) * P2);
  EXPECT_NEAR(2.0 * aux_loss(p.data(), 3, 3, r.counts_E), hf, 1e-6);
  EXPECT_NEAR(aux_loss(p.data(), 3, 3, r.counts_E), 6.5 / 6, 1e-6);  // E/(K·T)·Σ count·P by hand
}

TEST(MoeRouterLoss, AuxLossGradientIsCountOverTokens) {
  // moe_route_backward with no kept assignment (so no weight gradient) and aux_coef 0.5.
  Routing r{.tokens = 3, .experts = 3, .offsets = {0, 0, 0, 0}, .top_k = 2, .counts_E = {2, 3, 1}};
  for (const backend::BackendInfo& info : test::backend_infos()) {
    auto be = backend::make_backend(info.kind);
    const std::vector<float> d = test::route_backward(*be, r, {}, token_choice(3, 2, TopkNorm::kNone), 0.5);
    // 0.5 · E·count_e/(A·T) = 0.5 · 3·count_e/18
    for (int64_t t = 0; t < 3; ++t) {
      for (int64_t e = 0; e < 3; ++e) {
        EXPECT_NEAR(d[size_t(t * 3 + e)], 0.5 * 3.0 * double(r.counts_E[size_t(e)]) / 18.0, 1e-7) << info.name;
      }
    }
  }
}

TEST(MoeRouterLoss, ZLossHandValue) {
  // lse(0, 0) = ln 2, lse(ln 3, 0) = ln 4 = 2 ln 2 → mean of squares = (1 + 4)/2 · ln²2.
  const std::vector<float> logits = {0.0f, 0.0f, std::log(3.0f), 0.0f};
  std::vector<double> lse;
  EXPECT_NEAR(z_loss(logits.data(), 2, 2, lse), 2.5 * std::log(2.0) * std::log(2.0), 1e-6);
  ASSERT_EQ(lse.size(), 2u);
  EXPECT_NEAR(lse[1], 2.0 * std::log(2.0), 1e-6);
  // ∂L_z/∂logit = 2·lse·p/T: for row 1, p = (3/4, 1/4).
  const std::vector<float> probs = {0.5f, 0.5f, 0.75f, 0.25f};
  for (const backend::BackendInfo& info : test::backend_infos()) {
    std::vector<float> dl(4, 0.0f);
    backend::make_backend(info.kind)->moe_z_loss_backward(dl.data(), probs.data(), lse.data(), 2, 2, 1.0);
    EXPECT_NEAR(dl[2], 2.0 * 2.0 * std::log(2.0) * 0.75 / 2.0, 1e-6) << info.name;
    EXPECT_NEAR(dl[0], 2.0 * std::log(2.0) * 0.5 / 2.0, 1e-6) << info.name;
  }
}

}  // namespace
}  // namespace upcycle::model
