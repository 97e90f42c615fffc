// The per-domain form of the Dirichlet-prior loss, shared by the ref and cpu kernels of
// Backend::dirichlet_prior_loss: tokens are grouped by prior, each group's loss comes from the kernel's
// own one-prior loss, and the groups combine as L = Σ_g (T_g/T)·L_g, ∂L/∂p_te = (T_g/T)·∂L_g/∂p_te,
// priors in increasing index (the order the sum runs in, so both kernels add the same terms).
// Non-goals: the one-prior loss itself (each kernel's).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace upcycle::backend {

// one_prior_loss(probs_GE, G, E, alpha_E, dprobs_GE or null) → L_g. prior_T null: every token prior 0.
template <typename OnePriorLoss>
double grouped_prior_loss(const double* probs_TE, int64_t T, int64_t E, const int32_t* prior_T,
                          const double* alpha_PE, int64_t priors, double* dprobs_TE, OnePriorLoss&& one_prior_loss) {
  if (dprobs_TE) std::fill_n(dprobs_TE, T * E, 0.0);
  double loss = 0.0;
  std::vector<int64_t> rows;
  std::vector<double> probs_GE, dprobs_GE;
  for (int64_t g = 0; g < priors; ++g) {
    rows.clear();
    for (int64_t t = 0; t < T; ++t)
      if ((prior_T ? prior_T[t] : 0) == g) rows.push_back(t);
    if (rows.empty()) continue;
    const auto G = int64_t(rows.size());
    probs_GE.resize(size_t(G * E));
    for (int64_t i = 0; i < G; ++i) std::copy_n(probs_TE + rows[size_t(i)] * E, E, probs_GE.begin() + i * E);
    dprobs_GE.resize(dprobs_TE ? size_t(G * E) : 0);
    const double weight = double(G) / double(T);
    loss += weight * one_prior_loss(probs_GE.data(), G, E, alpha_PE + g * E, dprobs_TE ? dprobs_GE.data() : nullptr);
    if (dprobs_TE)
      for (int64_t i = 0; i < G; ++i)
        for (int64_t e = 0; e < E; ++e) dprobs_TE[rows[size_t(i)] * E + e] = weight * dprobs_GE[size_t(i * E + e)];
  }
  return loss;
}

}  // namespace upcycle::backend
