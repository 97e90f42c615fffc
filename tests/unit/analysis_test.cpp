// src/analysis pure functions against hand-computed values: cosines (identical 1, orthogonal 0,
// negated −1, a worked case, pieces = their concatenation, zero vector 0), expert similarity matrices
// and their off-diagonal means; the neuron-matched similarity (permuted copies exactly 1 where the
// ordered cosine is far from it, a half-shared pair, the one-directional value for different widths,
// the evenly spaced query sample); load fractions, total-variation distance, domain specialisation
// and the aggregation of per-domain routing counts of one layer.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <numeric>
#include <vector>

#include "analysis/expert_similarity.h"
#include "analysis/routing_analysis.h"

namespace upcycle::analysis {
namespace {

using Floats = std::vector<float>;

TEST(AnalysisExpertSimilarity, CosineOfHandBuiltVectors) {
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

TEST(AnalysisExpertSimilarity, PiecesAreTheirConcatenation) {
  const Floats a1 = {1, 2}, a2 = {3}, b1 = {4, 5}, b2 = {6};
  const WeightPieces a = {a1, a2}, b = {b1, b2};
  EXPECT_DOUBLE_EQ(dot_product(a, b), 32.0);
  EXPECT_NEAR(cosine_similarity(a, b), 0.9746318461970762, 1e-15);
}

TEST(AnalysisExpertSimilarity, IdenticalExpertsGiveAllOnes) {
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

TEST(AnalysisExpertSimilarity, MatrixAndMeanOfAHandCase) {
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

// An FFN built from its neuron vectors n_i = [gate_row_i; up_row_i; down_col_i] (3·D values each),
// stored as the model stores it (gate/up [F, D], down [D, F]) so the down column gather is exercised.
struct Ffn {
  Floats gate_FD, up_FD, down_DF;
  int64_t F = 0, D = 0;
  FfnView view() const { return {gate_FD, up_FD, down_DF, F, D}; }
  WeightPieces pieces() const { return {gate_FD, up_FD, down_DF}; }
};

Ffn ffn_from_neurons(const std::vector<Floats>& neurons_F3D) {
  Ffn f;
  f.F = int64_t(neurons_F3D.size());
  f.D = int64_t(neurons_F3D[0].size() / 3);
  f.down_DF.assign(size_t(f.F * f.D), 0.0f);
  for (int64_t i = 0; i < f.F; ++i) {
    const Floats& n = neurons_F3D[size_t(i)];
    for (int64_t d = 0; d < f.D; ++d) {
      f.gate_FD.push_back(n[size_t(d)]);
      f.up_FD.push_back(n[size_t(f.D + d)]);
      f.down_DF[size_t(d * f.F + i)] = n[size_t(2 * f.D + d)];
    }
  }
  return f;
}

// F pseudo-random neurons of 3·D values in [−1, 1) (a fixed LCG: the test does not depend on <random>).
std::vector<Floats> pseudo_random_neurons(int64_t F, int64_t D, uint32_t seed) {
  std::vector<Floats> neurons(static_cast<size_t>(F), Floats(static_cast<size_t>(3 * D)));
  uint32_t state = seed;
  for (Floats& n : neurons)
    for (float& v : n) {
      state = state * 1664525u + 1013904223u;
      v = float(state >> 8) / float(1u << 23) - 1.0f;
    }
  return neurons;
}

std::vector<Floats> permuted(const std::vector<Floats>& neurons) {  // a fixed non-trivial permutation
  std::vector<Floats> out;
  for (size_t k = 0; k < neurons.size(); ++k) out.push_back(neurons[(k * 7 + 3) % neurons.size()]);
  return out;
}

Floats basis(int64_t dims, int64_t k) {  // unit vector e_k of R^dims
  Floats e(static_cast<size_t>(dims), 0.0f);
  e[size_t(k)] = 1.0f;
  return e;
}

TEST(AnalysisMatchedSimilarity, PermutedCopyIsExactlyOne) {
  const std::vector<Floats> neurons = pseudo_random_neurons(37, 5, 11);  // 37 coprime with the stride 7
  const Ffn a = ffn_from_neurons(neurons), b = ffn_from_neurons(permuted(neurons));
  EXPECT_EQ(matched_similarity(a.view(), a.view()), 1.0);
  EXPECT_EQ(matched_similarity(a.view(), b.view()), 1.0);
  EXPECT_EQ(matched_similarity_one_way(b.view(), a.view()), 1.0);
  EXPECT_EQ(matched_similarity_to({a.view(), b.view()}, a.view()), (std::vector<double>{1.0, 1.0}));
  // The storage-order cosine sees two unrelated vectors: the reason analyze matches neurons.
  EXPECT_LT(std::abs(cosine_similarity(a.pieces(), b.pieces())), 0.5);
  // Another FFN of random neurons: the max-of-random-cosines floor, well below 1.
  const Ffn c = ffn_from_neurons(pseudo_random_neurons(37, 5, 99));
  EXPECT_LT(matched_similarity(a.view(), c.view()), 0.9);
  EXPECT_GT(matched_similarity(a.view(), c.view()), 0.0);
}

TEST(AnalysisMatchedSimilarity, HalfSharedNeuronsHandCase) {
  // D = 3, neuron vectors in R^9 = [gate | up | down]. a = {x, y}, b = {x, z} with
  // x = g0 + d2 (gate and down entries, so the down transpose matters), y = g0, z = u1:
  // cos(x, y) = 1/√2, z ⟂ x, y.
  Floats x = basis(9, 0), y = basis(9, 0), z = basis(9, 4);
  x[8] = 1.0f;
  const Ffn a = ffn_from_neurons({x, y}), b = ffn_from_neurons({x, z});
  const double r = 1.0 / std::sqrt(2.0);
  // a→b: x finds x (1), y finds x (1/√2). b→a: x finds x (1), z finds nothing (0).
  EXPECT_NEAR(matched_similarity_one_way(a.view(), b.view()), (1.0 + r) / 2, 1e-15);
  EXPECT_NEAR(matched_similarity_one_way(b.view(), a.view()), 0.5, 1e-15);
  EXPECT_NEAR(matched_similarity(a.view(), b.view()), (2.0 + r) / 4, 1e-15);  // ≈ 0.6768
  EXPECT_NEAR(matched_similarity(b.view(), a.view()), (2.0 + r) / 4, 1e-15);  // symmetric
  // Two experts sharing half their neurons, the other halves orthogonal to everything: exactly ½.
  const Ffn p = ffn_from_neurons({basis(6, 0), basis(6, 1)}), q = ffn_from_neurons({basis(6, 1), basis(6, 2)});
  EXPECT_EQ(matched_similarity(p.view(), q.view()), 0.5);
  // Matrix: p, a permuted p and q → [[1, 1, ½], [1, 1, ½], [½, ½, 1]], mean off-diagonal (2 + 4·½)/6.
  const Ffn p_perm = ffn_from_neurons({basis(6, 1), basis(6, 0)});
  const auto m = matched_similarity_matrix_EE({p.view(), p_perm.view(), q.view()});
  const std::vector<std::vector<double>> want = {{1, 1, 0.5}, {1, 1, 0.5}, {0.5, 0.5, 1}};
  EXPECT_EQ(m, want);
  EXPECT_NEAR(*mean_off_diagonal(m), 4.0 / 6.0, 1e-15);
  // A zero neuron has no direction: cosine 0 with everything, including itself on the diagonal.
  const Ffn half_zero = ffn_from_neurons({basis(6, 0), Floats(6, 0.0f)});
  EXPECT_EQ(matched_similarity_matrix_EE({half_zero.view()})[0][0], 0.5);
  EXPECT_EQ(matched_similarity(half_zero.view(), p.view()), 0.5);
}

TEST(AnalysisMatchedSimilarity, DifferentWidthsUseTheExpertToDenseDirection) {
  // A fine-grained expert holding neuron x of a dense FFN {x, y, w}: every expert neuron is found
  // (expert→dense = 1), but the dense FFN's y and w are not in the expert.
  Floats x = basis(6, 0), y = basis(6, 0), w = basis(6, 3);
  y[1] = 1.0f;  // cos(y, x) = 1/√2
  const Ffn expert = ffn_from_neurons({x}), dense = ffn_from_neurons({x, y, w});
  const double r = 1.0 / std::sqrt(2.0);
  EXPECT_EQ(matched_similarity_one_way(expert.view(), dense.view()), 1.0);
  EXPECT_NEAR(matched_similarity_one_way(dense.view(), expert.view()), (1.0 + r + 0.0) / 3, 1e-15);
  EXPECT_NEAR(matched_similarity(expert.view(), dense.view()), (1.0 + (1.0 + r) / 3) / 2, 1e-15);
  // matched_similarity_to: one-directional for another width, symmetric for the same width.
  const Ffn other = ffn_from_neurons({w});
  EXPECT_EQ(matched_similarity_to({expert.view(), other.view()}, dense.view()), (std::vector<double>{1.0, 1.0}));
  const Ffn same_width = ffn_from_neurons({x, basis(6, 4), basis(6, 5)});  // shares x only
  EXPECT_NEAR(matched_similarity_to({same_width.view()}, dense.view())[0],
              ((1.0 + 0 + 0) / 3 + (1.0 + r + 0) / 3) / 2, 1e-15);
  // Different model widths cannot be compared.
  EXPECT_ANY_THROW(matched_similarity(expert.view(), ffn_from_neurons({basis(9, 0)}).view()));
}

TEST(AnalysisMatchedSimilarity, EvenlySpacedQuerySampleAboveMaxNeurons) {
  EXPECT_EQ(query_neurons(4, 512), (std::vector<int64_t>{0, 1, 2, 3}));  // small: exact
  EXPECT_EQ(query_neurons(4, 2), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(query_neurons(10, 4), (std::vector<int64_t>{0, 2, 5, 7}));  // ⌊k·10/4⌋
  EXPECT_ANY_THROW(query_neurons(4, 0));
  // Permuted copies stay exactly 1 with a sample: every sampled neuron still searches all of b.
  const std::vector<Floats> neurons = pseudo_random_neurons(37, 5, 5);
  const Ffn a = ffn_from_neurons(neurons), b = ffn_from_neurons(permuted(neurons));
  EXPECT_EQ(matched_similarity(a.view(), b.view(), 3), 1.0);
  EXPECT_EQ(matched_similarity_matrix_EE({a.view(), b.view()}, 3)[0][1], 1.0);
  // a = {e0, e1, e2, e3}, b = {e0, e2, e4, e5} (orthonormal in R^6): a's neurons 0 and 2 are in b,
  // 1 and 3 are not; b's 0 and 1 are in a. Exact: a→b = ½, b→a = ½, matched ½. With max_neurons 2
  // the queries are neurons {0, 2}: a→b = (1 + 1)/2 = 1, b→a = (e0: 1, e4: 0)/2 = ½, matched ¾.
  const Ffn p = ffn_from_neurons({basis(6, 0), basis(6, 1), basis(6, 2), basis(6, 3)});
  const Ffn q = ffn_from_neurons({basis(6, 0), basis(6, 2), basis(6, 4), basis(6, 5)});
  EXPECT_EQ(matched_similarity(p.view(), q.view()), 0.5);
  EXPECT_EQ(matched_similarity_one_way(p.view(), q.view(), 2), 1.0);
  EXPECT_EQ(matched_similarity_one_way(q.view(), p.view(), 2), 0.5);
  EXPECT_EQ(matched_similarity(p.view(), q.view(), 2), 0.75);
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
