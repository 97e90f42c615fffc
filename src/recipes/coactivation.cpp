// Activation profiles and balanced co-activation clustering (see coactivation.h). Shape legend:
// N calibration tokens, F neurons, C clusters of width m = F'; n = C·m routed neurons.
#include "recipes/coactivation.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "core/error.h"

namespace upcycle::recipes {
namespace {

// Markers of the n routed neurons as centroid sums: count_Ct[k][t] = #members of k active on t.
std::vector<std::vector<double>> centroids(const ActivationProfile& p, const std::vector<int64_t>& neurons,
                                           const std::vector<int64_t>& assign, int64_t C) {
  std::vector<std::vector<double>> c(size_t(C), std::vector<double>(size_t(p.tokens()), 0.0));
  std::vector<int64_t> size(size_t(C), 0);
  for (size_t i = 0; i < neurons.size(); ++i) {
    ++size[size_t(assign[i])];
    for (int32_t t : p.active_tokens(neurons[i])) c[size_t(assign[i])][size_t(t)] += 1.0;
  }
  for (int64_t k = 0; k < C; ++k)
    for (double& v : c[size_t(k)]) v /= double(std::max<int64_t>(1, size[size_t(k)]));
  return c;
}

// d(i, k) = Σ_t |b_ti − c_kt| = Σ_t c_kt + Σ_{t: b_ti = 1} (1 − 2 c_kt), for every routed neuron i: [n][C].
std::vector<double> distances(const ActivationProfile& p, const std::vector<int64_t>& neurons,
                              const std::vector<std::vector<double>>& c) {
  const int64_t C = int64_t(c.size());
  std::vector<double> d(neurons.size() * size_t(C));
  for (int64_t k = 0; k < C; ++k) {
    const double total = std::accumulate(c[size_t(k)].begin(), c[size_t(k)].end(), 0.0);
    for (size_t i = 0; i < neurons.size(); ++i) {
      double v = total;
      for (int32_t t : p.active_tokens(neurons[i])) v += 1.0 - 2.0 * c[size_t(k)][size_t(t)];
      d[i * size_t(C) + size_t(k)] = v;
    }
  }
  return d;
}

// Balanced assignment of n = C·m points: greedy by increasing distance, then improving swaps.
std::vector<int64_t> balanced_assign(const std::vector<double>& d, int64_t n, int64_t C, int64_t m) {
  std::vector<int64_t> order(size_t(n * C));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return d[size_t(a)] < d[size_t(b)]; });
  std::vector<int64_t> assign(size_t(n), -1), room(size_t(C), m);
  for (int64_t pair : order) {
    const int64_t i = pair / C, k = pair % C;
    if (assign[size_t(i)] < 0 && room[size_t(k)] > 0) assign[size_t(i)] = k, --room[size_t(k)];
  }
  auto dist = [&](int64_t i, int64_t k) { return d[size_t(i * C + k)]; };
  // Swaps between clusters a and b: moving i from a to b costs δ_i = d(i,b) − d(i,a), j from b to a
  // δ_j = d(j,a) − d(j,b); pairing the cheapest movers of each side while δ_i + δ_j < 0 lowers the cost.
  constexpr int kMaxPasses = 20;  // each pass strictly lowers the cost; the cap bounds the time only
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    bool swapped = false;
    for (int64_t a = 0; a < C; ++a)
      for (int64_t b = a + 1; b < C; ++b) {
        std::vector<std::pair<double, int64_t>> from_a, from_b;
        for (int64_t i = 0; i < n; ++i) {
          if (assign[size_t(i)] == a) from_a.emplace_back(dist(i, b) - dist(i, a), i);
          if (assign[size_t(i)] == b) from_b.emplace_back(dist(i, a) - dist(i, b), i);
        }
        std::sort(from_a.begin(), from_a.end());
        std::sort(from_b.begin(), from_b.end());
        for (size_t q = 0; q < std::min(from_a.size(), from_b.size()); ++q) {
          if (from_a[q].first + from_b[q].first >= -1e-9) break;
          assign[size_t(from_a[q].second)] = b, assign[size_t(from_b[q].second)] = a, swapped = true;
        }
      }
    if (!swapped) break;
  }
  return assign;
}

}  // namespace

ActivationProfile::ActivationProfile(int64_t F, int64_t top_active) : top_active_(top_active), active_(size_t(F)) {
  UPCYCLE_CHECK(F >= 1 && top_active >= 1 && top_active <= F, "ActivationProfile: K_a outside [1, F]");
}

void ActivationProfile::add(const float* h_TF, int64_t T) {
  const int64_t F = neurons(), Ka = top_active_;
  std::vector<int32_t> top(size_t(T * Ka));
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* h = h_TF + t * F;
    std::vector<int32_t> idx(static_cast<size_t>(F));
    std::iota(idx.begin(), idx.end(), 0);
    // Strict total order (|h| descending, index ascending): the selected set is unique.
    auto before = [h](int32_t a, int32_t b) {
      const float x = std::fabs(h[a]), y = std::fabs(h[b]);
      return x > y || (x == y && a < b);
    };
    std::nth_element(idx.begin(), idx.begin() + (Ka - 1), idx.end(), before);
    std::copy_n(idx.begin(), Ka, top.begin() + t * Ka);
  }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < Ka; ++j) active_[size_t(top[size_t(t * Ka + j)])].push_back(int32_t(tokens_ + t));
  tokens_ += T;
}

double ActivationProfile::rate(int64_t neuron) const {
  return tokens_ == 0 ? 0.0 : double(active_[size_t(neuron)].size()) / double(tokens_);
}

NeuronCarving carve_neurons(const ActivationProfile& p, int64_t shared_width, int64_t C, int64_t m, int64_t max_iter) {
  const int64_t F = p.neurons();
  UPCYCLE_CHECK(C >= 1 && m >= 1 && shared_width >= 0 && shared_width + C * m == F && max_iter >= 1,
                "carve_neurons: shared width + clusters × width must be the FFN width");
  std::vector<int64_t> by_rate(static_cast<size_t>(F));
  std::iota(by_rate.begin(), by_rate.end(), 0);
  std::stable_sort(by_rate.begin(), by_rate.end(), [&](int64_t a, int64_t b) { return p.rate(a) > p.rate(b); });
  NeuronCarving r;
  r.shared.assign(by_rate.begin(), by_rate.begin() + shared_width);
  std::sort(r.shared.begin(), r.shared.end());
  std::vector<int64_t> neurons(by_rate.begin() + shared_width, by_rate.end());  // by decreasing rate
  const int64_t n = int64_t(neurons.size());

  // Initial centroids: the markers of the C most active routed neurons (neurons[0..C)).
  std::vector<int64_t> assign;
  std::vector<std::vector<double>> c(size_t(C), std::vector<double>(size_t(p.tokens()), 0.0));
  for (int64_t k = 0; k < C; ++k)
    for (int32_t t : p.active_tokens(neurons[size_t(k)])) c[size_t(k)][size_t(t)] = 1.0;

  double prev_cost = -1;
  std::vector<int64_t> prev;
  for (r.iterations = 1; r.iterations <= max_iter; ++r.iterations) {
    const std::vector<double> d = distances(p, neurons, c);
    assign = balanced_assign(d, n, C, m);
    double cost = 0;
    for (int64_t i = 0; i < n; ++i) cost += d[size_t(i * C + assign[size_t(i)])];
    if (assign == prev || (prev_cost >= 0 && std::abs(cost - prev_cost) <= 1e-3 * cost)) break;
    c = centroids(p, neurons, assign, C);
    prev_cost = cost;
    prev = assign;
  }
  r.iterations = std::min(r.iterations, max_iter);
  c = centroids(p, neurons, assign, C);
  const std::vector<double> d = distances(p, neurons, c);
  r.clusters.assign(size_t(C), {});
  r.representatives.assign(size_t(C), -1);
  std::vector<double> best(size_t(C), 0.0);
  for (int64_t i = 0; i < n; ++i) r.clusters[size_t(assign[size_t(i)])].push_back(neurons[size_t(i)]);
  for (int64_t k = 0; k < C; ++k) {
    std::sort(r.clusters[size_t(k)].begin(), r.clusters[size_t(k)].end());
    for (int64_t i = 0; i < n; ++i) {
      if (assign[size_t(i)] != k) continue;
      const double v = d[size_t(i * C + k)];
      int64_t& rep = r.representatives[size_t(k)];
      if (rep < 0 || v < best[size_t(k)] || (v == best[size_t(k)] && neurons[size_t(i)] < rep))
        rep = neurons[size_t(i)], best[size_t(k)] = v;
    }
  }
  return r;
}

}  // namespace upcycle::recipes
