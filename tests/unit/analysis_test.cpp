// src/analysis pure functions against hand-computed values: cosines (identical 1, orthogonal 0,
// negated −1, a worked case, pieces = their concatenation, zero vector 0), expert similarity matrices
// and their off-diagonal means, load fractions, total-variation distance, domain specialisation and
// the aggregation of per-domain routing counts of one layer.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "analysis/expert_similarity.h"
#include "analysis/routing_analysis.h"

namespace upcycle::analysis {
namespace {

using Floats = std::vector<float>;

TEST(ExpertSimilarity, CosineOfHandBuiltVectors) {
  const Floats a = {1, 2, 3}, neg = {-1, -2, -3}, b = {4, 5, 6}, x = {1, 0, 0}, y = {0, 3, 0}, zero = {0, 0, 0};
  EXPECT_NEAR(cosine_similarity(a, a), 1.0, 1e-15);
  EXPECT_NEAR(cosine_similarity(a, Floats{2, 4, 6}), 1.0, 1e-15);  // scale does not matter
  EXPECT_NEAR(cosine_similarity(a, neg), -1.0, 1e-15);
  EXPECT_EQ(cosine_similarity(x, y), 0.0);
  // a·b = 32, |a|² = 14, |b|² = 77.
  EXPECT_NEAR(cosine_similarity(a, b), 32.0 / std::sqrt(14.0 * 77.0), 1e-15);
  EXPECT_NEAR(cosine_similarity(a, b), 0.9746318461970762, 1e-15);
  EXPECT_EQ(cosine_similarity(a, zero), 0.0);  // no direction: 0 by convention
}

TEST(ExpertSimilarity, PiecesAreTheirConcatenation) {
  const Floats a1 = {1, 2}, a2 = {3}, b1 = {4, 5}, b2 = {6};
  const WeightPieces a = {a1, a2}, b = {b1, b2};
  EXPECT_DOUBLE_EQ(dot_product(a, b), 32.0);
  EXPECT_NEAR(cosine_similarity(a, b), 0.9746318461970762, 1e-15);
}

TEST(ExpertSimilarity, IdenticalExpertsGiveAllOnes) {
  const Floats gate = {0.5f, -1.25f, 2}, up = {3, 0.125f, -7}, down = {1, 1, -1};
  const std::vector<WeightPieces> experts(4, WeightPieces{gate, up, down});
  const auto m = similarity_matrix_EE(experts);
  ASSERT_EQ(m.size(), 4u);
  for (const auto& row : m) {
    ASSERT_EQ(row.size(), 4u);
    for (double v : row) EXPECT_NEAR(v, 1.0, 1e-12);
  }
  EXPECT_NEAR(*mean_off_diagonal(m), 1.0, 1e-12);
  for (double v : similarity_to(experts, WeightPieces{gate, up, down})) EXPECT_NEAR(v, 1.0, 1e-12);
}

TEST(ExpertSimilarity, MatrixAndMeanOfAHandCase) {
  // e0 = (1, 0), e1 = (0, 1), e2 = (1, 1): cos(e0, e1) = 0, cos(e0, e2) = cos(e1, e2) = 1/√2.
  const Floats e0 = {1, 0}, e1 = {0, 1}, e2 = {1, 1};
  const auto m = similarity_matrix_EE({{e0}, {e1}, {e2}});
  const double r = 1.0 / std::sqrt(2.0);
  const std::vector<std::vector<double>> want = {{1, 0, r}, {0, 1, r}, {r, r, 1}};
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) EXPECT_NEAR(m[i][j], want[i][j], 1e-15) << i << "," << j;
  EXPECT_NEAR(*mean_off_diagonal(m), 4 * r / 6, 1e-15);  // (0 + 0 + 4 · 1/√2) / 6
  const std::vector<double> to_e0 = similarity_to({{e0}, {e1}, {e2}}, {e0});
  EXPECT_NEAR(to_e0[0], 1, 1e-15);
  EXPECT_NEAR(to_e0[1], 0, 1e-15);
  EXPECT_NEAR(to_e0[2], r, 1e-15);
  EXPECT_FALSE(mean_off_diagonal({{1.0}}).has_value());  // one expert: nothing to compare
}

TEST(RoutingAnalysis, LoadFractions) {
  const std::vector<int64_t> one = {0, 5, 0, 0}, mixed = {1, 3, 0, 4}, none = {0, 0};
  EXPECT_EQ(load_fractions(one), (std::vector<double>{0, 1, 0, 0}));  // all tokens to one expert → share 1
  EXPECT_EQ(load_fractions(mixed), (std::vector<double>{0.125, 0.375, 0, 0.5}));
  EXPECT_EQ(load_fractions(none), (std::vector<double>{0, 0}));
}

TEST(RoutingAnalysis, TotalVariation) {
  const std::vector<double> a = {1, 0}, b = {0, 1}, h = {0.5, 0.5};
  EXPECT_DOUBLE_EQ(total_variation(a, b), 1.0);
  EXPECT_DOUBLE_EQ(total_variation(a, h), 0.5);
  EXPECT_DOUBLE_EQ(total_variation(h, h), 0.0);
}

TEST(RoutingAnalysis, DomainSpecialization) {
  // Two domains on disjoint experts: mean load (¼, ¼, ¼, ¼), TV of each to it ½ → 0.5.
  EXPECT_DOUBLE_EQ(domain_specialization({{0.5, 0.5, 0, 0}, {0, 0, 0.5, 0.5}}), 0.5);
  // Three one-hot domains: 1 − 1/3.
  EXPECT_NEAR(domain_specialization({{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}), 2.0 / 3.0, 1e-15);
  // (1, 0) and (½, ½): mean (¾, ¼), both TVs ¼.
  EXPECT_DOUBLE_EQ(domain_specialization({{1, 0}, {0.5, 0.5}}), 0.25);
  EXPECT_EQ(domain_specialization({{0.2, 0.8}, {0.2, 0.8}}), 0.0);
  EXPECT_EQ(domain_specialization({{1, 0}}), 0.0);  // one domain: nothing to compare
}

TEST(RoutingAnalysis, AggregatesDomainsOfOneLayer) {
  model::LayerRoutingSummary a{3, {6, 0, 0, 2}, 8, 0, 1.0, 0.5, 1.0};
  model::LayerRoutingSummary b{3, {0, 0, 4, 0}, 6, 2, 2.0, 0.9, 2.0};
  const LayerRoutingAnalysis r = aggregate_layer_routing({{"prose", a, 4}, {"code", b, 12}});
  EXPECT_EQ(r.layer, 3);
  // Σ counts (6, 0, 4, 2) / 12.
  ASSERT_EQ(r.load_E.size(), 4u);
  EXPECT_DOUBLE_EQ(r.load_E[0], 0.5);
  EXPECT_DOUBLE_EQ(r.load_E[1], 0.0);
  EXPECT_DOUBLE_EQ(r.load_E[2], 4.0 / 12);
  EXPECT_DOUBLE_EQ(r.load_E[3], 2.0 / 12);
  EXPECT_DOUBLE_EQ(r.dropped, 2.0 / 14);
  EXPECT_DOUBLE_EQ(r.entropy, (4 * 1.0 + 12 * 2.0) / 16);  // token-weighted
  EXPECT_DOUBLE_EQ(r.top1, (4 * 0.5 + 12 * 0.9) / 16);
  EXPECT_DOUBLE_EQ(r.aux, 1.75);
  ASSERT_EQ(r.domain_load.size(), 2u);
  EXPECT_EQ(r.domain_load[0].first, "prose");
  EXPECT_EQ(r.domain_load[0].second, (std::vector<double>{0.75, 0, 0, 0.25}));
  EXPECT_EQ(r.domain_load[1].second, (std::vector<double>{0, 0, 1, 0}));
  // Mean domain load (⅜, 0, ½, ⅛): TV(prose) = ½(⅜ + ½ + ⅛) = ½, TV(code) = ½(⅜ + ½ + ⅛) = ½.
  EXPECT_DOUBLE_EQ(r.domain_specialization, 0.5);
}

}  // namespace
}  // namespace upcycle::analysis
