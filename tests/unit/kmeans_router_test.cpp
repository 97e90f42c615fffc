// Spherical k-means (recipes/kmeans.h) on hand-made points whose clusters and centroids are known,
// its determinism (seed and thread count) and empty-cluster repair; and the k-means router rows (recipes/router_kmeans.h) on a
// tiny random model, checked against the engine's FFN inputs: every row is row_norm times the
// normalised sum of the unit FFN inputs that route to it top-1 (Lloyd's fixed point), so each
// calibration token's top-1 expert is its cluster.
#include "recipes/kmeans.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"
#include "recipes/router_kmeans.h"
#include "support/model_test_support.h"

namespace upcycle::recipes {
namespace {

// Two points per axis direction, mirrored around it and of different lengths: the normalised sum of
// each pair is the axis (up to the inputs' float rounding), so the centroids are e_x, e_y, e_z.
const std::vector<float> kAxisPairs = {
    2.0f, 0.2f,  0.0f,  1.0f, -0.1f, 0.0f,   // around x
    0.0f, 3.0f,  0.3f,  0.0f, 0.5f,  -0.05f,  // around y
    0.1f, 0.0f,  1.0f,  -0.4f, 0.0f, 4.0f,   // around z
};

TEST(SphericalKmeans, FindsTheHandMadeClustersAndTheirCentroids) {
  for (uint64_t seed : {0u, 1u, 7u, 1234u}) {
    SCOPED_TRACE(seed);
    const KMeansResult r = spherical_kmeans(kAxisPairs.data(), 6, 3, 3, seed, "test");
    ASSERT_EQ(r.assignment.size(), 6u);
    for (int64_t axis = 0; axis < 3; ++axis) EXPECT_EQ(r.assignment[size_t(2 * axis)], r.assignment[size_t(2 * axis + 1)]);
    EXPECT_EQ(std::set<int64_t>(r.assignment.begin(), r.assignment.end()).size(), 3u);
    for (int64_t axis = 0; axis < 3; ++axis) {
      const double* c = r.centroids_KD.data() + r.assignment[size_t(2 * axis)] * 3;
      for (int64_t d = 0; d < 3; ++d)  // exact up to the float rounding of 0.1-type inputs
        EXPECT_NEAR(c[d], d == axis ? 1.0 : 0.0, 1e-7) << "axis " << axis;
    }
    EXPECT_LE(r.iterations, 3);
  }
}

TEST(SphericalKmeans, SameSeedSameResultAndTheSeedMatters) {
  // 40 points on a circle: no natural clusters, so the result depends on the k-means++ draws.
  std::vector<float> circle;
  for (int i = 0; i < 40; ++i) circle.push_back(float(std::cos(0.157 * i))), circle.push_back(float(std::sin(0.157 * i)));
  const KMeansResult a = spherical_kmeans(circle.data(), 40, 2, 4, 5, "layer");
  const KMeansResult b = spherical_kmeans(circle.data(), 40, 2, 4, 5, "layer");
  EXPECT_EQ(a.assignment, b.assignment);
  EXPECT_EQ(a.centroids_KD, b.centroids_KD);
  bool differs = false;
  for (uint64_t seed = 6; seed < 16 && !differs; ++seed)
    differs = spherical_kmeans(circle.data(), 40, 2, 4, seed, "layer").centroids_KD != a.centroids_KD;
  EXPECT_TRUE(differs);
  for (int64_t k = 0; k < 4; ++k)
    EXPECT_NEAR(std::hypot(a.centroids_KD[size_t(2 * k)], a.centroids_KD[size_t(2 * k + 1)]), 1.0, 1e-12);
}

TEST(SphericalKmeans, ThreadCountDoesNotChangeTheResult) {
  // Large enough (N·K·D ≥ 2^16) for the OpenMP path; 3 threads split 2000 points unevenly.
  std::vector<float> pts(2000 * 16);
  CounterRng rng(1, "points");
  rng.fill_normal(pts.data(), 0, pts.size(), 0.0f, 1.0f);
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const KMeansResult one = spherical_kmeans(pts.data(), 2000, 16, 4, 2, "t");
  omp_set_num_threads(3);
  const KMeansResult three = spherical_kmeans(pts.data(), 2000, 16, 4, 2, "t");
  omp_set_num_threads(before);
  EXPECT_EQ(one.assignment, three.assignment);
  EXPECT_EQ(one.centroids_KD, three.centroids_KD);
  EXPECT_GT(one.iterations, 1);
}

TEST(SphericalKmeans, NoClusterStaysEmpty) {
  // Two identical points and one other, K = 3: k-means++ can only seed a duplicate centre, and both
  // copies prefer the same one; the repair gives the empty cluster one copy, so each point ends alone.
  const std::vector<float> pts = {1, 0, 0, 1, 0, 0, 0, 1, 0};
  for (uint64_t seed : {0u, 3u, 9u}) {
    const KMeansResult r = spherical_kmeans(pts.data(), 3, 3, 3, seed, "dup", 20);
    EXPECT_EQ(std::set<int64_t>(r.assignment.begin(), r.assignment.end()).size(), 3u) << seed;
    for (int64_t n = 0; n < 3; ++n)  // each centroid is its lone member
      for (int64_t d = 0; d < 3; ++d)
        EXPECT_EQ(r.centroids_KD[size_t(r.assignment[size_t(n)] * 3 + d)], double(pts[size_t(n * 3 + d)]));
  }
}

TEST(KmeansRouter, RowsAreTheCentroidsOfTheTokensTheyRoute) {
  const ModelConfig config = test::tiny_model_config(Family::kLlama);
  auto be = backend::make_backend(backend::BackendKind::kCpu);
  model::Transformer base(config, *be);
  test::fill_random(base.params(), 5, 0.4f);
  const int64_t D = config.hidden_size, E = 4, N = 2 * kCalibrationSeqLen + 37;  // three sequences
  std::vector<int32_t> ids(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) ids[size_t(i)] = int32_t((i * 7919 + i / 3) % config.vocab_size);
  const std::vector<int64_t> layers = {0, config.num_hidden_layers - 1};
  const double row_norm = 0.02 * std::sqrt(double(D));
  const auto rows = kmeans_router_rows(base, ids, E, layers, 3, row_norm);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows, kmeans_router_rows(base, ids, E, layers, 3, row_norm));  // deterministic

  for (size_t i = 0; i < layers.size(); ++i) {
    SCOPED_TRACE(layers[i]);
    // Unit FFN inputs of every token, sequence by sequence as the calibration runs them.
    std::vector<double> u(size_t(N * D));
    for (int64_t start = 0; start < N; start += kCalibrationSeqLen) {
      const int64_t T = std::min(kCalibrationSeqLen, N - start);
      base.forward(ids.data() + start, 1, T);
      const float* x = base.ffn_inputs(layers[i]);
      for (int64_t t = 0; t < T; ++t) {
        double n2 = 0;
        for (int64_t d = 0; d < D; ++d) n2 += double(x[t * D + d]) * x[t * D + d];
        for (int64_t d = 0; d < D; ++d) u[size_t((start + t) * D + d)] = x[t * D + d] / std::sqrt(n2);
      }
    }
    std::vector<double> sums(size_t(E * D), 0.0);
    std::vector<int64_t> counts(static_cast<size_t>(E), 0);
    for (int64_t n = 0; n < N; ++n) {
      int64_t top = 0;
      double best = -1e300;
      for (int64_t e = 0; e < E; ++e) {
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += u[size_t(n * D + d)] * rows[i][size_t(e * D + d)];
        if (s > best) best = s, top = e;
      }
      ++counts[size_t(top)];
      for (int64_t d = 0; d < D; ++d) sums[size_t(top * D + d)] += u[size_t(n * D + d)];
    }
    for (int64_t e = 0; e < E; ++e) {
      ASSERT_GT(counts[size_t(e)], 0) << "expert " << e << " routes no calibration token";
      double n2 = 0;
      for (int64_t d = 0; d < D; ++d) n2 += sums[size_t(e * D + d)] * sums[size_t(e * D + d)];
      for (int64_t d = 0; d < D; ++d)
        EXPECT_NEAR(rows[i][size_t(e * D + d)], row_norm * sums[size_t(e * D + d)] / std::sqrt(n2), 1e-5)
            << "expert " << e << " d " << d;
    }
  }
}

}  // namespace
}  // namespace upcycle::recipes
