// Training-free carving (recipes/coactivation.h, recipes/carving.h). A hand-built SwiGLU FFN whose
// neurons 0, 4, 8 fire on every token while {1, 5, 6} fire only on one token set and {2, 3, 7} only on
// the other: carving must return exactly these three sets (shared, two routed experts). Clusters stay
// balanced when the natural groups are not; activation markers break ties towards low indices and do
// not depend on the thread count; and on a tiny random model carve_layers equals the clustering of
// h = silu(W_gate x)·(W_up x) recomputed here from the engine's FFN inputs, with router rows
// row_norm·W_gate[r]/‖W_gate[r]‖ of each cluster's representative neuron r; auto weight scaling s = K
// (or E) for co-activation experts.
#include "recipes/carving.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "recipes/coactivation.h"
#include "recipes/weight_scaling.h"
#include "support/model_test_support.h"

namespace upcycle::recipes {
namespace {

double silu(double v) { return v / (1.0 + std::exp(-v)); }

// h_TF = silu(x·gateᵀ) ⊙ (x·upᵀ) in double, rounded to float.
std::vector<float> swiglu_h(const std::vector<float>& x_TD, const float* gate_FD, const float* up_FD, int64_t T,
                            int64_t D, int64_t F) {
  std::vector<float> h(size_t(T * F));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t f = 0; f < F; ++f) {
      double g = 0, u = 0;
      for (int64_t d = 0; d < D; ++d) g += double(x_TD[size_t(t * D + d)]) * gate_FD[f * D + d], u += double(x_TD[size_t(t * D + d)]) * up_FD[f * D + d];
      h[size_t(t * F + f)] = float(silu(g) * u);
    }
  return h;
}

std::set<int64_t> as_set(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }

TEST(Carving, HandBuiltFfnGivesTheAlwaysActiveNeuronsAndTheTwoTokenSets) {
  const int64_t D = 3, F = 9, T = 12;
  // Direction 0 is on for every token; direction 1 only for even tokens (set A), 2 only for odd (set B).
  std::vector<float> x(size_t(T * D));
  for (int64_t t = 0; t < T; ++t) {
    x[size_t(t * D)] = 1.0f + 0.05f * float(t);
    x[size_t(t * D + 1 + t % 2)] = 1.0f + 0.1f * float(t % 3);
  }
  const std::set<int64_t> shared = {0, 4, 8}, set_a = {1, 5, 6}, set_b = {2, 3, 7};
  std::vector<float> gate(size_t(F * D), 0.0f), up(size_t(F * D), 0.0f);
  for (int64_t f = 0; f < F; ++f) {
    const int64_t dir = shared.count(f) ? 0 : set_a.count(f) ? 1 : 2;
    gate[size_t(f * D + dir)] = dir == 0 ? 2.0f : 3.0f + 0.1f * float(f);
    up[size_t(f * D + dir)] = dir == 0 ? 1.5f : 4.0f;
  }
  const std::vector<float> h = swiglu_h(x, gate.data(), up.data(), T, D, F);
  // K_a = 6: the three shared neurons and the three of the token's set, nothing else.
  ActivationProfile profile(F, active_per_token(F, 0.66));
  ASSERT_EQ(profile.top_active(), 6);
  profile.add(h.data(), T / 2);  // two batches: token indices continue
  profile.add(h.data() + (T / 2) * F, T / 2);
  for (int64_t f : shared) EXPECT_EQ(profile.rate(f), 1.0);
  for (int64_t f : set_a) EXPECT_EQ(profile.active_tokens(f), (std::vector<int32_t>{0, 2, 4, 6, 8, 10}));
  for (int64_t f : set_b) EXPECT_EQ(profile.active_tokens(f), (std::vector<int32_t>{1, 3, 5, 7, 9, 11}));

  const NeuronCarving c = carve_neurons(profile, 3, 2, 3);
  EXPECT_EQ(as_set(c.shared), shared);
  ASSERT_EQ(c.clusters.size(), 2u);
  const std::set<std::set<int64_t>> routed = {as_set(c.clusters[0]), as_set(c.clusters[1])};
  EXPECT_EQ(routed, (std::set<std::set<int64_t>>{set_a, set_b}));
  for (size_t k = 0; k < 2; ++k) EXPECT_TRUE(as_set(c.clusters[k]).count(c.representatives[k])) << k;
  EXPECT_LE(c.iterations, 2);
}

TEST(Carving, ClustersAreBalancedWhenTheNaturalGroupsAreNot) {
  // Neurons 0-2 fire together on tokens 0-3, neuron 3 alone on tokens 4-7 (K_a = 3 per token):
  // two clusters of two must split the group of three.
  const int64_t F = 4, T = 8;
  std::vector<float> h(size_t(T * F), 0.0f);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t f = 0; f < F; ++f) h[size_t(t * F + f)] = (t < 4) == (f < 3) ? 1.0f + 0.1f * float(f) : 0.0f;
  ActivationProfile profile(F, 3);
  profile.add(h.data(), T);
  const NeuronCarving c = carve_neurons(profile, 0, 2, 2);
  ASSERT_EQ(c.clusters.size(), 2u);
  for (const auto& k : c.clusters) EXPECT_EQ(k.size(), 2u);
  std::set<int64_t> all;
  for (const auto& k : c.clusters) all.insert(k.begin(), k.end());
  EXPECT_EQ(all, (std::set<int64_t>{0, 1, 2, 3}));
}

TEST(Carving, MarkersBreakTiesTowardsLowIndicesAndIgnoreThreads) {
  const int64_t F = 64, T = 40;
  std::vector<float> h(size_t(T * F), 1.0f);  // all equal: the first K_a neurons win
  for (int64_t t = 0; t < T; ++t) h[size_t(t * F + (t % F))] = -5.0f;  // |h| counts, not h
  ActivationProfile ties(F, 3);
  ties.add(h.data(), T);
  EXPECT_EQ(ties.active_tokens(0).size(), size_t(T));    // active unless replaced by a larger |h|
  EXPECT_EQ(ties.active_tokens(63).size(), 0u);
  EXPECT_EQ(ties.active_tokens(39), std::vector<int32_t>{39});
  std::vector<float> noise(size_t(T * F));
  CounterRng(3, "h").fill_normal(noise.data(), 0, noise.size(), 0.0f, 1.0f);
  std::vector<std::vector<int32_t>> per_threads[2];
  for (int threads : {1, 3}) {
    omp_set_num_threads(threads);
    ActivationProfile p(F, 7);
    p.add(noise.data(), T);
    for (int64_t f = 0; f < F; ++f) per_threads[threads == 1 ? 0 : 1].push_back(p.active_tokens(f));
  }
  omp_set_num_threads(omp_get_num_procs());
  EXPECT_EQ(per_threads[0], per_threads[1]);
  EXPECT_EQ(active_per_token(100, 0.1), 10);
  EXPECT_EQ(active_per_token(100, 0.101), 11);
  EXPECT_EQ(active_per_token(100, 1e-9), 1);
}

TEST(Carving, CarveLayersMatchesTheClusteringOfTheEnginesActivations) {
  ModelConfig config = test::tiny_model_config(Family::kLlama);
  auto be = backend::make_backend(backend::BackendKind::kCpu);
  model::Transformer m(config, *be);
  test::fill_random(m.params(), 11, 0.5f);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 50; ++i) tokens.push_back(int32_t((i * 7 + 3) % config.vocab_size));
  const std::vector<int64_t> layers = {0, 1};
  const int64_t F = config.intermediate_size, D = config.hidden_size;  // F = 12: S = 1, E = 3 of width 3
  const CarveOptions o{3, 3, 3, 0.25, 0.7};
  const std::vector<LayerCarving> got = carve_layers(m, tokens, layers, o);
  ASSERT_EQ(got.size(), 2u);
  m.forward(tokens.data(), 1, int64_t(tokens.size()));  // one sequence of 50 < kCalibrationSeqLen
  for (size_t i = 0; i < layers.size(); ++i) {
    SCOPED_TRACE(i);
    const std::string prefix = "model.layers." + std::to_string(layers[i]) + ".mlp.";
    const float* gate = m.params().at(prefix + "gate_proj.weight");
    const std::vector<float> x(m.ffn_inputs(layers[i]), m.ffn_inputs(layers[i]) + tokens.size() * size_t(D));
    const std::vector<float> h = swiglu_h(x, gate, m.params().at(prefix + "up_proj.weight"), int64_t(tokens.size()), D, F);
    ActivationProfile p(F, 3);
    ASSERT_EQ(active_per_token(F, 0.25), 3);
    p.add(h.data(), int64_t(tokens.size()));
    const NeuronCarving want = carve_neurons(p, 3, 3, 3);
    EXPECT_EQ(got[i].neurons.shared, want.shared);
    EXPECT_EQ(got[i].neurons.clusters, want.clusters);
    EXPECT_EQ(got[i].neurons.representatives, want.representatives);
    std::set<int64_t> all(want.shared.begin(), want.shared.end());
    for (const auto& k : want.clusters) all.insert(k.begin(), k.end());
    EXPECT_EQ(int64_t(all.size()), F);
    ASSERT_EQ(int64_t(got[i].router_ED.size()), 3 * D);
    for (int64_t e = 0; e < 3; ++e) {
      const float* w = gate + want.representatives[size_t(e)] * D;
      double n2 = 0;
      for (int64_t d = 0; d < D; ++d) n2 += double(w[d]) * w[d];
      for (int64_t d = 0; d < D; ++d)
        EXPECT_NEAR(got[i].router_ED[size_t(e * D + d)], 0.7 * w[d] / std::sqrt(n2), 1e-6) << e << "," << d;
    }
  }
}

// Co-activation experts each enter with weight ≈ 1: s = K renormalised, s = E for softmax-topk; the
// virtual-group formulas (G, E·G/K) for the other splits.
TEST(Carving, AutoWeightScalingMakesEachSelectedExpertWeighOne) {
  ConvertSpec s;
  s.experts = 6, s.granularity = 8, s.shared_experts = 2, s.top_k = 2, s.split = ExpertSplit::kCoactivation;
  EXPECT_EQ(resolve_scale(s), 2.0);
  s.routing = RoutingOrder::kSoftmaxTopk;
  EXPECT_EQ(resolve_scale(s), 6.0);
  s.split = ExpertSplit::kContiguous;
  EXPECT_EQ(resolve_scale(s), 6.0 * 8.0 / 2.0);
  s.routing = RoutingOrder::kTopkSoftmax;
  EXPECT_EQ(resolve_scale(s), 8.0);
}

}  // namespace
}  // namespace upcycle::recipes
