// Owning buffers for one MoE layer's weights and gradients in tests, with the MoeWeights/MoeGrads views
// the layer takes; plus the router probabilities computed independently in double (to pick inputs whose
// routing cannot flip under a finite-difference step). Header-only, like backend_test_support.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "model/moe_layer.h"
#include "support/backend_test_support.h"

namespace upcycle::test {

struct MoeBuffers {
  int64_t E = 0, D = 0, F = 0, Fs = 0;
  bool shared_gated = false;
  std::vector<float> router, gate, up, down, s_gate, s_up, s_down, s_expert_gate;

  MoeBuffers(int64_t E_, int64_t D_, int64_t F_, int64_t Fs_, bool gated)
      : E(E_), D(D_), F(F_), Fs(Fs_), shared_gated(gated),
        router(size_t(E * D), 0.0f), gate(size_t(E * F * D), 0.0f), up(gate.size(), 0.0f), down(gate.size(), 0.0f),
        s_gate(size_t(Fs * D), 0.0f), s_up(s_gate.size(), 0.0f), s_down(s_gate.size(), 0.0f),
        s_expert_gate(gated ? size_t(D) : 0, 0.0f) {}

  // Random weights: router scaled by `router_scale`, everything else N(0, 0.5²).
  void randomize(uint64_t seed, float router_scale) {
    router = random_floats(router.size(), seed, router_scale, "router");
    gate = random_floats(gate.size(), seed, 0.5f, "gate");
    up = random_floats(up.size(), seed, 0.5f, "up");
    down = random_floats(down.size(), seed, 0.5f, "down");
    s_gate = random_floats(s_gate.size(), seed, 0.5f, "s_gate");
    s_up = random_floats(s_up.size(), seed, 0.5f, "s_up");
    s_down = random_floats(s_down.size(), seed, 0.5f, "s_down");
    s_expert_gate = random_floats(s_expert_gate.size(), seed, 0.5f, "s_expert_gate");
  }

  model::MoeWeights weights() const { return views<model::MoeWeights>(*this); }
  // Gradient view onto this object's buffers (use a MoeBuffers zeroed by construction as the gradient).
  model::MoeGrads grads() { return views<model::MoeGrads>(*this); }

 private:
  // MoeWeights and MoeGrads share field names; a const `self` yields const pointers.
  template <typename Views, typename Self>
  static Views views(Self& self) {
    Views v;
    v.router_ED = self.router.data();
    for (int64_t e = 0; e < self.E; ++e) {
      v.gate_FD.push_back(self.gate.data() + e * self.F * self.D);
      v.up_FD.push_back(self.up.data() + e * self.F * self.D);
      v.down_DF.push_back(self.down.data() + e * self.D * self.F);
    }
    if (self.Fs > 0) {
      v.shared_gate_FsD = self.s_gate.data();
      v.shared_up_FsD = self.s_up.data();
      v.shared_down_DFs = self.s_down.data();
      if (self.shared_gated) v.shared_expert_gate_1D = self.s_expert_gate.data();
    }
    return v;
  }
};

// p = softmax((x ⊙ noise)·W_rᵀ) in double (noise empty = 1).
inline std::vector<double> router_probs(const std::vector<float>& x, const std::vector<float>& router, int64_t T,
                                        int64_t D, int64_t E, const std::vector<float>& noise = {}) {
  std::vector<double> p(size_t(T * E));
  for (int64_t t = 0; t < T; ++t) {
    double max_l = -INFINITY;
    for (int64_t e = 0; e < E; ++e) {
      double l = 0.0;
      for (int64_t d = 0; d < D; ++d) {
        const double xv = double(x[size_t(t * D + d)]) * (noise.empty() ? 1.0 : double(noise[size_t(t * D + d)]));
        l += xv * router[size_t(e * D + d)];
      }
      p[size_t(t * E + e)] = l;
      max_l = std::max(max_l, l);
    }
    double denom = 0.0;
    for (int64_t e = 0; e < E; ++e) denom += std::exp(p[size_t(t * E + e)] - max_l);
    for (int64_t e = 0; e < E; ++e) p[size_t(t * E + e)] = std::exp(p[size_t(t * E + e)] - max_l) / denom;
  }
  return p;
}

// Smallest gap between a selected and the best unselected probability over every routing decision
// (top-k per token, capacity per expert, top-C per expert for expert choice). A perturbation that moves
// probabilities by less than half of it cannot change the routing.
inline double routing_margin(const std::vector<double>& p, int64_t T, int64_t E, const model::MoeOptions& o) {
  double margin = INFINITY;
  auto gap_after = [&margin](std::vector<double> v, int64_t n) {
    if (n <= 0 || n >= int64_t(v.size())) return;
    std::sort(v.begin(), v.end(), std::greater<>());
    margin = std::min(margin, v[size_t(n - 1)] - v[size_t(n)]);
  };
  if (o.mode == model::RoutingMode::kExpertChoice) {
    const int64_t C = std::min<int64_t>(T, int64_t(std::ceil(double(T) / double(E) * o.capacity_factor)));
    for (int64_t e = 0; e < E; ++e) {
      std::vector<double> col;
      for (int64_t t = 0; t < T; ++t) col.push_back(p[size_t(t * E + e)]);
      gap_after(col, C);
    }
    return margin;
  }
  std::vector<std::vector<double>> cand(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> row(p.begin() + t * E, p.begin() + (t + 1) * E);
    gap_after(row, o.top_k);
    std::vector<int64_t> idx(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) idx[size_t(e)] = e;
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return row[size_t(a)] > row[size_t(b)]; });
    for (int64_t k = 0; k < o.top_k; ++k) cand[size_t(idx[size_t(k)])].push_back(row[size_t(idx[size_t(k)])]);
  }
  if (o.capacity_factor > 0) {
    const int64_t C = int64_t(std::ceil(double(T * o.top_k) / double(E) * o.capacity_factor));
    for (auto& c : cand) gap_after(c, C);
  }
  return margin;
}

}  // namespace upcycle::test
