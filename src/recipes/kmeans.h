// Spherical (cosine) k-means with k-means++ seeding, for the data-driven router init (router_kmeans.h).
// Points are L2-normalised first; a centroid is the normalised sum of its members, so the assignment
// argmax_k ⟨x̂, c_k⟩ is the nearest centroid in cosine distance AND the top-1 expert of a router whose
// rows are the (equally scaled) centroids: the clusters are exactly what such a router routes.
//   seeding: k-means++ (Arthur & Vassilvitskii 2007) on d(x) = 1 − ⟨x̂, c⟩: the first centre is point
//            ⌊u₀·N⌋, centre j is drawn with probability ∝ min_i d(x, c_i), u_j = CounterRng(seed,
//            stream).uniform(j).
//   Lloyd:   assign (ties → lowest k), recompute; stop when no assignment changes or after max_iter.
//   empty cluster: its centre moves to the point worst served by its own centre (smallest ⟨x̂, c⟩, the
//            lowest index on ties) that is not the last member of its cluster, so none stays empty.
// In double; the assignment step runs on OpenMP threads, one point each, and everything else serially,
// so the result depends only on the points, k, the seed and the stream name (not the thread count).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace upcycle::recipes {

struct KMeansResult {
  std::vector<double> centroids_KD;  // unit rows
  std::vector<int64_t> assignment;   // [N], in [0, K)
  int64_t iterations = 0;            // Lloyd rounds run
};

// x_ND: N points of dimension D (row-major); needs N ≥ K ≥ 1 (UPCYCLE_CHECK). An all-zero point
// stays zero after normalisation and is equidistant to every centre.
KMeansResult spherical_kmeans(const float* x_ND, int64_t N, int64_t D, int64_t K, uint64_t seed,
                              std::string_view stream, int64_t max_iter = 100);

}  // namespace upcycle::recipes
