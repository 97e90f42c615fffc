// Neuron co-activation profiles and the balanced clustering of training-free carving (CMoE: Pei et
// al. 2025, arXiv 2502.04416, §3; LLaMA-MoE's co-activation split: Zhu et al. 2024, arXiv 2406.16554).
//   profile:  for token t, neuron i of the dense SwiGLU FFN is active, b_ti = 1, when |h_ti| is among the
//             K_a largest |h_t·| (h = silu(W_gate x) ⊙ W_up x; ties → the lower index); its activation
//             rate is μ_i = (1/N) Σ_t b_ti.
//   shared:   the S·F' neurons of highest μ (ties → lower index), sorted by index.
//   routed:   the other neurons form C clusters of exactly F' by balanced k-means on their marker
//             vectors b_·i ∈ {0,1}^N with the L1 distance d(i, k) = Σ_t |b_ti − c_kt|; centroids start at
//             the markers of the C highest-μ remaining neurons and move to the mean of their members.
//   assign:   CMoE solves the balanced assignment exactly (LAPJV on the cost matrix with each centroid
//             repeated F' times); here pairs (i, k) are taken in order of increasing d (ties → lower i,
//             then lower k) while cluster k has room; then, for each cluster pair (a, b), the cheapest
//             movers a→b and b→a (δ = d(i, new) − d(i, old), sorted) swap in pairs while δ_i + δ_j < 0,
//             repeated until no swap (at most 20 passes). Stop (CMoE) when the cost changes by < 1e-3
//             relatively, the assignment repeats, or after max_iter rounds.
//   representative of cluster k: its member nearest the final centroid (ties → lower index).
// Everything after the profile is serial: the result depends only on the markers (not on threads).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace upcycle::recipes {

// Which tokens each neuron is active on, accumulated over calibration batches.
class ActivationProfile {
 public:
  ActivationProfile(int64_t F, int64_t top_active);  // K_a = top_active, 1 ≤ K_a ≤ F (UPCYCLE_CHECK)
  // Adds T tokens of SwiGLU intermediates h_TF (token indices continue from the previous call).
  void add(const float* h_TF, int64_t T);
  int64_t neurons() const { return int64_t(active_.size()); }
  int64_t tokens() const { return tokens_; }
  int64_t top_active() const { return top_active_; }
  const std::vector<int32_t>& active_tokens(int64_t neuron) const { return active_[size_t(neuron)]; }  // ascending
  double rate(int64_t neuron) const;  // μ_i

 private:
  int64_t top_active_;
  int64_t tokens_ = 0;
  std::vector<std::vector<int32_t>> active_;  // [F]: the tokens t with b_ti = 1
};

struct NeuronCarving {
  std::vector<int64_t> shared;                // S·F' neuron indices, ascending
  std::vector<std::vector<int64_t>> clusters;  // [C][F'], each ascending
  std::vector<int64_t> representatives;        // [C]
  int64_t iterations = 0;                      // k-means rounds run
};

// Shared neurons and C balanced clusters of width F' from a profile; needs S·F' + C·F' = F and C ≥ 1
// (UPCYCLE_CHECK: callers validate sizes).
NeuronCarving carve_neurons(const ActivationProfile& profile, int64_t shared_width, int64_t clusters,
                            int64_t cluster_width, int64_t max_iter = 10);

}  // namespace upcycle::recipes
