// Router init from prompts (mergekit gate modes). References are computed here in double from the
// engine's hidden states taken prompt by prompt (and, for layer 0, from the embedding table alone),
// cheap_embed from hand-set embedding rows, the random modes by their statistics and keying, and the
// condition number on matrices whose singular values are known.
#include "recipes/router_from_prompts.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"
#include "support/expect_error.h"
#include "support/model_test_support.h"

namespace upcycle::recipes {
namespace {

using Prompts = std::vector<std::vector<int32_t>>;

std::vector<double> normalised(std::vector<double> v) {
  double n = 0;
  for (double x : v) n += x * x;
  n = std::max(std::sqrt(n), 1e-8);
  for (double& x : v) x /= n;
  return v;
}

class RouterFromPrompts : public ::testing::Test {
 protected:
  RouterFromPrompts()
      : config_(test::tiny_model_config(Family::kLlama)), be_(backend::make_backend(backend::BackendKind::kCpu)) {
    model_ = std::make_unique<model::Transformer>(config_, *be_);
    test::fill_random(model_->params(), 11, 0.4f);
  }

  // Per layer: mean over prompts of the last-token (or token-mean) hidden state, in double.
  std::vector<std::vector<double>> mean_hidden(const Prompts& prompts, bool average_tokens) {
    const int64_t L = config_.num_hidden_layers, D = config_.hidden_size;
    std::vector<std::vector<double>> m(size_t(L), std::vector<double>(size_t(D), 0.0));
    for (const auto& ids : prompts) {
      const int64_t T = int64_t(ids.size());
      model_->forward(ids.data(), 1, T);
      for (int64_t l = 0; l < L; ++l)
        for (int64_t t = average_tokens ? 0 : T - 1; t < T; ++t)
          for (int64_t d = 0; d < D; ++d)
            m[size_t(l)][size_t(d)] +=
                double(model_->hidden_states(l)[t * D + d]) / double(average_tokens ? T : 1) / double(prompts.size());
    }
    return m;
  }

  void expect_rows(const std::vector<std::vector<float>>& got, int64_t e,
                   const std::vector<std::vector<double>>& want) {
    const int64_t D = config_.hidden_size;
    for (size_t l = 0; l < want.size(); ++l)
      for (int64_t d = 0; d < D; ++d)
        EXPECT_NEAR(got[l][size_t(e * D + d)], want[l][size_t(d)], 1e-6)
            << "layer " << l << " expert " << e << " d " << d;
  }

  ModelConfig config_;
  std::unique_ptr<backend::Backend> be_;
  std::unique_ptr<model::Transformer> model_;
};

const std::vector<ExpertPrompts> kExperts = {
    {{{1, 3, 4}, {1, 5, 9, 2}}, {}},
    {{{1, 7}}, {{1, 3, 4}, {1, 2, 6, 8, 10}}},
    {{{1, 6, 6, 6, 6}}, {}},
};

TEST_F(RouterFromPrompts, HiddenRowsAreNormalisedMeanLastTokenStatesMinusNegatives) {
  for (GateMode mode : {GateMode::kHidden, GateMode::kHiddenLast, GateMode::kHiddenAvg}) {
    SCOPED_TRACE(std::string(gate_mode_name(mode)));
    const bool avg = mode == GateMode::kHiddenAvg;
    const auto rows = router_from_prompts(*model_, mode, kExperts, 0);
    ASSERT_EQ(rows.size(), size_t(config_.num_hidden_layers));
    ASSERT_EQ(rows[0].size(), size_t(3 * config_.hidden_size));
    for (int64_t e = 0; e < 3; ++e) {
      auto want = mean_hidden(kExperts[size_t(e)].positive, avg);
      if (!kExperts[size_t(e)].negative.empty()) {
        const auto neg = mean_hidden(kExperts[size_t(e)].negative, avg);
        for (size_t l = 0; l < want.size(); ++l)
          for (size_t d = 0; d < want[l].size(); ++d) want[l][d] -= neg[l][d];
      }
      for (auto& v : want) v = normalised(v);
      expect_rows(rows, e, want);
    }
  }
}

TEST_F(RouterFromPrompts, LayerZeroRowsComeFromTheEmbeddingTable) {
  // hidden_states[0] is the embedding output, so layer 0's `hidden` row is the normalised mean of the
  // embedding rows of the prompts' last tokens, without running the model.
  const auto rows = router_from_prompts(*model_, GateMode::kHidden, kExperts, 0);
  const float* embed = model_->params().find("model.embed_tokens.weight");
  const int64_t D = config_.hidden_size;
  std::vector<double> v(size_t(D), 0.0);
  for (int32_t last : {4, 2})
    for (int64_t d = 0; d < D; ++d) v[size_t(d)] += embed[last * D + d] / 2.0;
  v = normalised(v);
  for (int64_t d = 0; d < D; ++d) EXPECT_NEAR(rows[0][size_t(d)], v[size_t(d)], 1e-6);
}

TEST_F(RouterFromPrompts, NegativesChangeTheRowAndCancelWhenEqual) {
  const Prompts pos = {{1, 3, 4}, {1, 5}};
  const std::vector<ExpertPrompts> plain = {{pos, {}}}, with_neg = {{pos, {{1, 9, 9}}}}, cancel = {{pos, pos}};
  const auto a = router_from_prompts(*model_, GateMode::kHidden, plain, 0);
  const auto b = router_from_prompts(*model_, GateMode::kHidden, with_neg, 0);
  const auto z = router_from_prompts(*model_, GateMode::kHidden, cancel, 0);
  for (size_t l = 0; l < a.size(); ++l) {
    double na = 0, nb = 0, diff = 0;
    for (size_t d = 0; d < a[l].size(); ++d) {
      na += a[l][d] * a[l][d], nb += b[l][d] * b[l][d], diff += std::abs(a[l][d] - b[l][d]);
      EXPECT_EQ(z[l][d], 0.0f);  // mean − same mean = 0; mergekit's clamp keeps it 0, not NaN
    }
    EXPECT_NEAR(na, 1.0, 1e-6);
    EXPECT_NEAR(nb, 1.0, 1e-6);
    EXPECT_GT(diff, 0.1);
  }
}

TEST_F(RouterFromPrompts, CheapEmbedIsTheNormalisedEmbeddingSumOnEveryLayer) {
  // Embedding rows 1, 2, 3 = unit vectors e0, e1, e2; every other row 0.
  float* embed = model_->params().find("model.embed_tokens.weight");
  const int64_t D = config_.hidden_size;
  std::fill(embed, embed + config_.vocab_size * D, 0.0f);
  for (int64_t id = 1; id <= 3; ++id) embed[id * D + (id - 1)] = 1.0f;
  // Expert 0: tokens {1, 2} + {2} → (1, 2, 0)/√5. Expert 1 subtracts v({3}) = e2 and renormalises:
  // (1/√5, 2/√5, −1)/√2. Expert 2: padding-free sum including repeated tokens, {3, 3, 1} → (1, 0, 2)/√5.
  const std::vector<ExpertPrompts> experts = {{{{1, 2}, {2}}, {}}, {{{1, 2}, {2}}, {{3}}}, {{{3, 3, 1}}, {}}};
  const auto rows = router_from_prompts(*model_, GateMode::kCheapEmbed, experts, 0);
  const double s5 = std::sqrt(5.0), s2 = std::sqrt(2.0);
  const std::vector<std::vector<double>> want = {
      {1 / s5, 2 / s5, 0}, {1 / s5 / s2, 2 / s5 / s2, -1 / s2}, {1 / s5, 0, 2 / s5}};
  for (size_t l = 0; l < rows.size(); ++l)
    for (int64_t e = 0; e < 3; ++e)
      for (int64_t d = 0; d < D; ++d)
        EXPECT_NEAR(rows[l][size_t(e * D + d)], d < 3 ? want[size_t(e)][size_t(d)] : 0.0, 1e-7)
            << l << " " << e << " " << d;
}

// convert --recipe reads cheap_embed's rows straight from the checkpoint: the same bits as the model
// path, and only the prompts' token rows are asked for (so a 128k × 2048 table stays on disk).
TEST_F(RouterFromPrompts, CheapEmbedFromRowsReadsOnlyPromptTokens) {
  const float* embed = model_->params().find("model.embed_tokens.weight");
  const int64_t D = config_.hidden_size;
  const std::vector<ExpertPrompts> experts = {{{{1, 2}, {2, 7}}, {{3}}}, {{{5, 5, 1}}, {}}};
  std::vector<int32_t> asked;
  const auto from_rows = cheap_embed_router_rows(config_, experts, [&](int32_t id, float* row_D) {
    asked.push_back(id);
    std::copy_n(embed + id * D, D, row_D);
  });
  EXPECT_EQ(from_rows, router_from_prompts(*model_, GateMode::kCheapEmbed, experts, 0));
  std::sort(asked.begin(), asked.end());
  asked.erase(std::unique(asked.begin(), asked.end()), asked.end());
  EXPECT_EQ(asked, (std::vector<int32_t>{1, 2, 3, 5, 7}));
  const std::vector<ExpertPrompts> oov = {{{{1, 11}}, {}}};  // checked before any row is read
  EXPECT_UPCYCLE_ERROR(cheap_embed_router_rows(config_, oov, [](int32_t, float*) { FAIL() << "row read"; }, "m.yaml"),
                       "token id 11 outside the vocabulary", "m.yaml");
}

TEST_F(RouterFromPrompts, BadPromptsAreUserErrors) {
  const std::vector<ExpertPrompts> none = {{{{1, 2}}, {}}, {{}, {}}};
  EXPECT_UPCYCLE_ERROR(router_from_prompts(*model_, GateMode::kHidden, none, 0, "moe.yaml"),
                       "experts[1].positive_prompts: needs at least one prompt", "moe.yaml");
  const std::vector<ExpertPrompts> empty = {{{{1, 2}}, {{}}}};
  EXPECT_UPCYCLE_ERROR(router_from_prompts(*model_, GateMode::kHidden, empty, 0, "moe.yaml"),
                       "experts[0].negative_prompts[0]: no tokens", "moe.yaml");
  const std::vector<ExpertPrompts> oov = {{{{1, 11}}, {}}};
  EXPECT_UPCYCLE_ERROR(router_from_prompts(*model_, GateMode::kCheapEmbed, oov, 0, "moe.yaml"),
                       "experts[0].positive_prompts[0]: token id 11 outside the vocabulary [0, 11)", "moe.yaml");
  // Random modes ignore prompts entirely.
  EXPECT_NO_THROW(router_from_prompts(*model_, GateMode::kRandom, none, 0));
}

TEST(RandomRouterRows, StatisticsAndSeededKeying) {
  ModelConfig config = test::tiny_model_config(Family::kLlama);
  config.hidden_size = 64;
  const int64_t E = 16, D = 64, n = E * D;
  for (GateMode mode : {GateMode::kRandom, GateMode::kUniformRandom}) {
    SCOPED_TRACE(std::string(gate_mode_name(mode)));
    const auto rows = random_router_rows(config, E, mode, 42);
    ASSERT_EQ(rows.size(), 2u);
    double sum = 0, sq = 0, max_abs = 0;
    for (const auto& layer : rows)
      for (float x : layer) sum += x, sq += double(x) * x, max_abs = std::max(max_abs, double(std::abs(x)));
    const double mean = sum / double(2 * n), var = sq / double(2 * n) - mean * mean;
    const double want_var = mode == GateMode::kRandom ? 1.0 : 1.0 / (3.0 * D);
    EXPECT_NEAR(mean, 0.0, 5 * std::sqrt(want_var / double(2 * n)));
    EXPECT_NEAR(var / want_var, 1.0, 0.15);
    if (mode == GateMode::kUniformRandom) {
      EXPECT_LE(max_abs, 1.0 / std::sqrt(double(D)));
    }
    // Keyed by (seed, layer, "router"), element e·D + d.
    const CounterRng rng(42, "model.layers.1.router");
    const double u = rng.uniform(5);
    EXPECT_FLOAT_EQ(rows[1][5], mode == GateMode::kRandom ? rng.normal(5) : float((2 * u - 1) / 8.0));
    EXPECT_EQ(rows, random_router_rows(config, E, mode, 42));
    EXPECT_NE(rows, random_router_rows(config, E, mode, 43));
    EXPECT_NE(rows[0], rows[1]);
  }
}

TEST(GateConditionNumber, KnownSingularValues) {
  // Jacobi eigenvalues of the 1-D Laplacian: 2 − √2, 2, 2 + √2.
  const auto eig = symmetric_eigenvalues({2, -1, 0, -1, 2, -1, 0, -1, 2}, 3);
  EXPECT_NEAR(eig[0], 2 - std::sqrt(2.0), 1e-12);
  EXPECT_NEAR(eig[1], 2.0, 1e-12);
  EXPECT_NEAR(eig[2], 2 + std::sqrt(2.0), 1e-12);

  EXPECT_NEAR(condition_number(std::vector<float>{1, 0, 0, 0, 1, 0, 0, 0, 1}, 3, 3), 1.0, 1e-12);
  EXPECT_NEAR(condition_number(std::vector<float>{1, 1, 0, 1, -1, 0}, 2, 3), 1.0, 1e-12);
  // diag(2, 0.5) rotated by 45°: singular values 2 and 0.5 → 4.
  const float c = float(std::sqrt(0.5));
  EXPECT_NEAR(condition_number(std::vector<float>{2 * c, 2 * c, -0.5f * c, 0.5f * c}, 2, 2), 4.0, 1e-6);
  // More experts than dimensions: the min(E, D) singular values (2 and 1), as torch.linalg.cond.
  EXPECT_NEAR(condition_number(std::vector<float>{1, 0, 0, 2, 0, 0}, 3, 2), 2.0, 1e-12);
  // Parallel rows: rank deficient.
  EXPECT_GT(condition_number(std::vector<float>{1, 2, 3, 2, 4, 6}, 2, 3), 1e6);
}

TEST(GateConditionNumber, WarningNamesTheDegenerateLayers) {
  const std::vector<float> good = {1, 0, 0, 0, 1, 0}, parallel = {1, 2, 3, 2, 4, 6.0001f};
  EXPECT_FALSE(degenerate_gate_warning({good, good}, 2, 3).has_value());
  auto one = degenerate_gate_warning({good, parallel}, 2, 3);
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->rfind("layer 1 has degenerate routing parameters", 0), 0u) << *one;
  auto two = degenerate_gate_warning({parallel, good, parallel}, 2, 3);
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(two->rfind("layers 0 and 2 have", 0), 0u) << *two;
  EXPECT_EQ(degenerate_gate_warning({parallel, parallel}, 2, 3)->rfind("all layers have", 0), 0u);
  // cond([[5, 0], [0, 1]]) = 5 is not above the threshold; 5.1 is.
  EXPECT_FALSE(degenerate_gate_warning({{5, 0, 0, 1}}, 2, 2).has_value());
  EXPECT_TRUE(degenerate_gate_warning({{5.1f, 0, 0, 1}}, 2, 2).has_value());
}

}  // namespace
}  // namespace upcycle::recipes
