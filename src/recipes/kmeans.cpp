// Spherical k-means (see kmeans.h).
#include "recipes/kmeans.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/rng.h"

namespace upcycle::recipes {
namespace {

void normalise_row(double* v, int64_t D) {
  double sq = 0;
  for (int64_t d = 0; d < D; ++d) sq += v[d] * v[d];
  if (sq == 0) return;
  const double inv = 1.0 / std::sqrt(sq);
  for (int64_t d = 0; d < D; ++d) v[d] *= inv;
}

double dot(const double* a, const double* b, int64_t D) {
  double s = 0;
  for (int64_t d = 0; d < D; ++d) s += a[d] * b[d];
  return s;
}

// k-means++ centres on the unit points u_ND.
std::vector<double> seed_centres(const std::vector<double>& u_ND, int64_t N, int64_t D, int64_t K,
                                 const CounterRng& rng) {
  std::vector<double> c_KD(static_cast<size_t>(K * D));
  std::vector<double> dist(static_cast<size_t>(N), std::numeric_limits<double>::infinity());
  auto take = [&](int64_t k, int64_t i) {
    std::copy_n(u_ND.data() + i * D, D, c_KD.data() + k * D);
    for (int64_t n = 0; n < N; ++n)
      dist[size_t(n)] = std::min(dist[size_t(n)], std::max(0.0, 1.0 - dot(u_ND.data() + n * D, c_KD.data() + k * D, D)));
  };
  take(0, std::min(N - 1, int64_t(rng.uniform(0) * double(N))));
  for (int64_t k = 1; k < K; ++k) {
    double total = 0;
    for (double d : dist) total += d;
    int64_t pick = 0;
    if (total > 0) {  // the first point whose cumulative weight passes u·total
      const double target = rng.uniform(uint64_t(k)) * total;
      double acc = 0;
      pick = -1;
      for (int64_t n = 0; n < N && pick < 0; ++n) {
        acc += dist[size_t(n)];
        if (acc > target && dist[size_t(n)] > 0) pick = n;
      }
      if (pick < 0)  // round-off at the end of the sum: the last point with weight
        for (int64_t n = N - 1; n >= 0 && pick < 0; --n)
          if (dist[size_t(n)] > 0) pick = n;
    } else {  // every point coincides with a centre: take the next unused index
      pick = k;
    }
    take(k, pick);
  }
  return c_KD;
}

}  // namespace

KMeansResult spherical_kmeans(const float* x_ND, int64_t N, int64_t D, int64_t K, uint64_t seed,
                              std::string_view stream, int64_t max_iter) {
  UPCYCLE_CHECK(K >= 1 && N >= K && D >= 1 && max_iter >= 1, "spherical_kmeans needs N >= K >= 1");
  std::vector<double> u_ND(x_ND, x_ND + N * D);
  for (int64_t n = 0; n < N; ++n) normalise_row(u_ND.data() + n * D, D);

  KMeansResult r;
  r.centroids_KD = seed_centres(u_ND, N, D, K, CounterRng(seed, stream));
  r.assignment.assign(size_t(N), -1);
  std::vector<double> best(static_cast<size_t>(N));
  std::vector<int64_t> count(static_cast<size_t>(K));
  std::vector<int64_t> next(static_cast<size_t>(N));
  for (r.iterations = 1; r.iterations <= max_iter; ++r.iterations) {
    // Each point's argmax is computed alone, in a fixed order: threads cannot change the result.
#pragma omp parallel for schedule(static) if (N * K * D >= (int64_t(1) << 16))
    for (int64_t n = 0; n < N; ++n) {
      int64_t arg = 0;
      double top = -std::numeric_limits<double>::infinity();
      for (int64_t k = 0; k < K; ++k) {
        const double s = dot(u_ND.data() + n * D, r.centroids_KD.data() + k * D, D);
        if (s > top) top = s, arg = k;
      }
      next[size_t(n)] = arg;
      best[size_t(n)] = top;
    }
    bool changed = next != r.assignment;
    r.assignment.swap(next);
    std::fill(count.begin(), count.end(), 0);
    for (int64_t a : r.assignment) ++count[size_t(a)];
    // Empty clusters take the worst-served point of a cluster that can spare it.
    for (int64_t k = 0; k < K; ++k) {
      if (count[size_t(k)] > 0) continue;
      int64_t worst = -1;
      for (int64_t n = 0; n < N; ++n)
        if (count[size_t(r.assignment[size_t(n)])] > 1 && (worst < 0 || best[size_t(n)] < best[size_t(worst)]))
          worst = n;
      UPCYCLE_CHECK(worst >= 0, "N >= K leaves a cluster with two members");
      --count[size_t(r.assignment[size_t(worst)])];
      r.assignment[size_t(worst)] = k;
      count[size_t(k)] = 1;
      best[size_t(worst)] = std::numeric_limits<double>::infinity();  // not moved twice
      changed = true;
    }
    // Centroids: normalised member sums.
    // One thread per centroid, members summed in index order: again independent of the thread count.
#pragma omp parallel for schedule(static) if (N * K * D >= (int64_t(1) << 16))
    for (int64_t k = 0; k < K; ++k) {
      double* c = r.centroids_KD.data() + k * D;
      std::fill(c, c + D, 0.0);
      for (int64_t n = 0; n < N; ++n)
        if (r.assignment[size_t(n)] == k)
          for (int64_t d = 0; d < D; ++d) c[d] += u_ND[size_t(n * D + d)];
      normalise_row(c, D);
    }
    if (!changed) break;
  }
  r.iterations = std::min(r.iterations, max_iter);
  return r;
}

}  // namespace upcycle::recipes
