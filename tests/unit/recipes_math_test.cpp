// The recipe building blocks against hand-computed cases and independent double-precision checks:
// layer selection, neuron sampling, drop/noise statistics and counts, virtual-group router rows,
// shuffled and contiguous splits, weight-scaling factors.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "recipes/expert_init.h"
#include "recipes/expert_split.h"
#include "recipes/layer_selection.h"
#include "recipes/presets.h"
#include "recipes/router_init.h"
#include "recipes/weight_scaling.h"

namespace upcycle::recipes {
namespace {

using V = std::vector<int64_t>;

TEST(LayerSelection, ParsesEveryForm) {
  EXPECT_EQ(select_moe_layers("all", 3), (V{0, 1, 2}));
  EXPECT_EQ(select_moe_layers("every:2:1", 6), (V{1, 3, 5}));  // Komatsuzaki: every other from the second
  EXPECT_EQ(select_moe_layers("every:3", 7), (V{0, 3, 6}));
  EXPECT_EQ(select_moe_layers("first:2", 5), (V{0, 1}));
  EXPECT_EQ(select_moe_layers("last:2", 5), (V{3, 4}));
  EXPECT_EQ(select_moe_layers("4,0,2", 5), (V{0, 2, 4}));
}

TEST(LayerSelection, RejectsBadInput) {
  for (const char* bad : {"every:0", "every:2:9", "first:0", "last:6", "1,1", "7", "x", "every:a", "", "1,,2"})
    EXPECT_THROW(select_moe_layers(bad, 5), Error) << bad;
}

TEST(Sampling, ExactCountDistinctAndDeterministic) {
  CounterRng rng(7, "s");
  auto a = sample_without_replacement(rng, 100, 37);
  EXPECT_EQ(a.size(), 37u);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 37u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_GE(a.front(), 0);
  EXPECT_LT(a.back(), 100);
  EXPECT_EQ(a, sample_without_replacement(CounterRng(7, "s"), 100, 37));
  EXPECT_NE(a, sample_without_replacement(CounterRng(8, "s"), 100, 37));
  auto perm = random_prefix(rng, 50, 50);
  std::sort(perm.begin(), perm.end());
  V iota(50);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(perm, iota);
}

TEST(Sampling, ReinitCountIsFloorOfRatioTimesWidth) {
  EXPECT_EQ(reinit_count(0.5, 7), 3);
  EXPECT_EQ(reinit_count(0.3, 10), 3);  // 0.3·10 is 2.999… in binary: still 3
  EXPECT_EQ(reinit_count(1.0, 12), 12);
  EXPECT_EQ(reinit_count(0.0, 12), 0);
}

// Rows (gate/up) or columns (down) that differ between two matrices.
std::set<int64_t> changed_neurons(const std::vector<float>& a, const std::vector<float>& b, int64_t W, int64_t D,
                                  FfnMatrix m) {
  std::set<int64_t> out;
  for (int64_t j = 0; j < W; ++j)
    for (int64_t d = 0; d < D; ++d) {
      size_t i = size_t(m == FfnMatrix::kDown ? d * W + j : j * D + d);
      if (a[i] != b[i]) out.insert(j);
    }
  return out;
}

std::vector<float> random_matrix(int64_t n, float mean, float std, uint64_t seed) {
  std::vector<float> w(static_cast<size_t>(n));
  CounterRng(seed, "m").fill_normal(w.data(), 0, w.size(), mean, std);
  return w;
}

TEST(ExpertInit, DropRedrawsExactlyFloorRFNeuronsWithSourceStatistics) {
  const int64_t W = 64, D = 48;
  for (auto scope : {DropScope::kNeuron, DropScope::kMatrix}) {
    ExpertInitParams p;
    p.init = ExpertInit::kDrop;
    p.ratio = 0.3;
    p.scope = scope;
    p.seed = 5;
    std::vector<std::set<int64_t>> sets;
    for (FfnMatrix m : {FfnMatrix::kGate, FfnMatrix::kUp, FfnMatrix::kDown}) {
      auto orig = random_matrix(W * D, 0.25f, 0.5f, 1 + int(m));
      MatrixStats st = matrix_stats(orig.data(), orig.size());
      auto w = orig;
      init_expert_matrix(w.data(), W, D, m, p, st, "layer0.expert1", "unused");
      auto changed = changed_neurons(orig, w, W, D, m);
      EXPECT_EQ(int64_t(changed.size()), reinit_count(0.3, W));
      auto expected = reinit_neurons(p, "layer0.expert1", m, W);
      EXPECT_EQ(changed, std::set<int64_t>(expected.begin(), expected.end()));
      // Re-drawn values: mean and std of the dense matrix (n = 19·48 samples; 5-sigma bounds).
      double sum = 0, sq = 0, n = 0;
      for (int64_t j : changed)
        for (int64_t d = 0; d < D; ++d) {
          double v = w[size_t(m == FfnMatrix::kDown ? d * W + j : j * D + d)];
          sum += v, sq += v * v, n += 1;
        }
      const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
      EXPECT_NEAR(mean, st.mean, 5 * st.std / std::sqrt(n));
      EXPECT_NEAR(sd, st.std, 5 * st.std / std::sqrt(2 * n));
      EXPECT_NEAR(st.mean, 0.25, 0.05);
      sets.push_back(changed);
    }
    if (scope == DropScope::kNeuron) {
      EXPECT_EQ(sets[0], sets[1]);
      EXPECT_EQ(sets[0], sets[2]);
    } else {
      EXPECT_FALSE(sets[0] == sets[1] && sets[1] == sets[2]);
    }
  }
}

TEST(ExpertInit, DropSliceStatsUseTheReplacedSlice) {
  const int64_t W = 40, D = 50;
  // Rows with very different scales: slice stats differ from the matrix stats.
  std::vector<float> orig(size_t(W * D));
  for (int64_t j = 0; j < W; ++j)
    for (int64_t d = 0; d < D; ++d) orig[size_t(j * D + d)] = float(j) + 0.01f * float(d % 7);
  ExpertInitParams p;
  p.init = ExpertInit::kDrop;
  p.ratio = 0.5;
  p.stats = DropStats::kSlice;
  p.seed = 2;
  auto S = reinit_neurons(p, "e", FfnMatrix::kGate, W);
  double sum = 0, sq = 0, n = 0;
  for (int64_t j : S)
    for (int64_t d = 0; d < D; ++d) sum += orig[size_t(j * D + d)], sq += double(orig[size_t(j * D + d)]) * orig[size_t(j * D + d)], n += 1;
  const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  auto w = orig;
  init_expert_matrix(w.data(), W, D, FfnMatrix::kGate, p, matrix_stats(orig.data(), orig.size()), "e", "unused");
  double s2 = 0;
  for (int64_t j : S)
    for (int64_t d = 0; d < D; ++d) s2 += w[size_t(j * D + d)];
  EXPECT_NEAR(s2 / n, mean, 5 * sd / std::sqrt(n));
}

TEST(ExpertInit, NoiseAddsGaussianToExactlyFloorRFNeurons) {
  const int64_t W = 80, D = 40;
  ExpertInitParams p;
  p.init = ExpertInit::kNoise;
  p.ratio = 0.25;
  p.noise_std = 0.1;
  p.seed = 3;
  auto orig = random_matrix(W * D, 0, 1, 9);
  auto w = orig;
  init_expert_matrix(w.data(), W, D, FfnMatrix::kDown, p, {}, "layer2.expert0", "unused");
  auto changed = changed_neurons(orig, w, W, D, FfnMatrix::kDown);
  EXPECT_EQ(changed.size(), 20u);
  double sq = 0, n = 0;
  for (int64_t j : changed)
    for (int64_t d = 0; d < D; ++d) {
      double diff = double(w[size_t(d * W + j)]) - orig[size_t(d * W + j)];
      sq += diff * diff, n += 1;
    }
  EXPECT_NEAR(std::sqrt(sq / n), 0.1, 0.1 * 5 / std::sqrt(2 * n));
}

TEST(ExpertSplit, ContiguousShardsAndShuffledCopies) {
  EXPECT_EQ(expert_neurons(ExpertSplit::kContiguous, 12, 3, 4, 0, 0), (V{4, 5, 6, 7}));  // shard 4 mod 3 = 1
  const int64_t F = 24, G = 4;
  for (int64_t copy = 0; copy < 2; ++copy) {
    std::set<int64_t> all;
    for (int64_t e = copy * G; e < (copy + 1) * G; ++e) {
      auto n = expert_neurons(ExpertSplit::kShuffled, F, G, e, 11, 3);
      EXPECT_EQ(n.size(), size_t(F / G));
      all.insert(n.begin(), n.end());
    }
    EXPECT_EQ(all.size(), size_t(F)) << "the G experts of one copy partition the FFN";
  }
  EXPECT_NE(expert_neurons(ExpertSplit::kShuffled, F, G, 0, 11, 3), expert_neurons(ExpertSplit::kShuffled, F, G, 4, 11, 3));
  EXPECT_EQ(shared_neurons(6, 2, 3), (V{0, 1, 2, 3, 4, 5, 0, 1, 2}));  // S·F/G = 9 > F: replicated
}

TEST(RouterInit, VirtualGroupsShareRowsAndStatsMatch) {
  const int64_t E = 8, D = 300, G = 4;
  std::vector<float> r(size_t(E * D));
  init_router(r.data(), E, D, G, RouterInit::kNormal, 0.02, 1, 3, nullptr);
  auto row = [&](int64_t e) { return std::vector<float>(r.begin() + e * D, r.begin() + (e + 1) * D); };
  for (int64_t e = 0; e < E; ++e) EXPECT_EQ(row(e), row(e / G * G)) << e;
  EXPECT_NE(row(0), row(G));
  init_router(r.data(), E, D, 1, RouterInit::kUniform, 0.02, 1, 3, nullptr);
  double sq = 0, mx = 0;
  for (float v : r) sq += double(v) * v, mx = std::max(mx, double(std::fabs(v)));
  EXPECT_NEAR(std::sqrt(sq / double(r.size())), 0.02, 0.002);
  EXPECT_LE(mx, 0.02 * std::sqrt(3.0));
  init_router(r.data(), E, D, 1, RouterInit::kZeros, 0.02, 1, 3, nullptr);
  for (float v : r) EXPECT_EQ(v, 0.0f);
}

TEST(WeightScaling, FactorsFollowRoutingOrder) {
  ConvertSpec s;
  s.experts = 64, s.granularity = 8, s.top_k = 8;
  s.routing = RoutingOrder::kTopkSoftmax;
  EXPECT_EQ(resolve_scale(s), 8.0);  // s = G
  s.routing = RoutingOrder::kSoftmaxTopk;
  EXPECT_EQ(resolve_scale(s), 64.0);  // s = E·G/K
  s.norm_topk = true;
  EXPECT_EQ(resolve_scale(s), 8.0);
  s.scaling = ScalingKind::kNone;
  EXPECT_EQ(resolve_scale(s), 1.0);
  s.scaling = ScalingKind::kFactor, s.scaling_factor = 2.5;
  EXPECT_EQ(resolve_scale(s), 2.5);
  auto c = matrix_scales(8.0, ScalingMode::kCubeRoot);
  EXPECT_DOUBLE_EQ(c.gate, 2.0);
  EXPECT_DOUBLE_EQ(c.up, 2.0);
  EXPECT_DOUBLE_EQ(c.down, 2.0);
  auto d = matrix_scales(8.0, ScalingMode::kDown);
  EXPECT_EQ(d.gate, 1.0);
  EXPECT_EQ(d.down, 8.0);
}

TEST(Presets, UnknownNameListsTheKnownOnes) {
  try {
    find_convert_preset("mixtral-magic");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("drop-upcycling"), std::string::npos) << e.what();
  }
  EXPECT_EQ(convert_presets().size(), 6u);
}

}  // namespace
}  // namespace upcycle::recipes
