// Dirichlet-prior shaping loss (DPSL; Mirvakhabova, Ehteshami Bejnordi et al., arXiv 2510.01185) for an
// MoE router: the maths is the backend op Backend::dirichlet_prior_loss (ref oracle in
// backend/ref/ref_moe_routing.h, Beta functions in backend/beta_distribution.h); this header holds the
// contract, the flag syntax and the prior table the layer passes to the op. A target prior Dir(α_1..α_E) on
// each token's probability vector p_t has per-expert marginals p_te ~ Beta(α_e, A − α_e), A = Σ_j α_j;
// the loss matches, for every expert e, the batch's empirical distribution of {p_te}_t to that Beta
// with the Batch-Shaping (Cramér–von Mises) distance of Ehteshami Bejnordi et al. (ICLR 2020):
//   L = (1/E) Σ_e (1/T) Σ_{i=1..T} (F_e(p_(i)e) − i/(T+1))²,
// p_(1)e ≤ … ≤ p_(T)e sorted over the batch's tokens, F_e the CDF of Beta(α_e, A − α_e). Gradient, with
// r_te the 1-based rank of token t for expert e (ties: lower token first) and f_e the Beta density:
//   ∂L/∂p_te = 2/(E·T) · (F_e(p_te) − r_te/(T+1)) · f_e(p_te).
// Verified vs assumed (docs/recipes.md "Dirichlet-prior shaping"): the Beta marginals and the matching of
// per-expert CDFs are the paper's; the squared-CDF functional with targets i/(T+1) and the mean over
// tokens and experts are the Batch-Shaping reference code's (same group), since §3 of the paper could
// not be read here. That code clips the density to [1e-3, 100] for its gradient; the op uses the exact
// density, evaluated at p clamped to [1e-7, 1 − 1e-7] (fp32 probabilities saturate at 0 and 1, where the
// density of α < 1 is infinite).
// Per-domain (asymmetric) priors, e.g. larger α for the experts meant for one domain's tokens: each token
// is judged against its domain's prior (DirichletPriorTable below).
// Non-goals: learnable α, Beta quantiles.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/beta_distribution.h"

namespace upcycle::model {

// The Beta CDF and density (backend/beta_distribution.h), under their old names.
using backend::beta_cdf;
using backend::beta_pdf;

// α per expert from "A" (symmetric: every expert α = A) or "A1,A2,…,AE" (one per expert); each α > 0
// and finite. Error naming `flag` when malformed or when a list's length is not num_experts.
std::vector<double> parse_dirichlet_prior(const std::string& text, int64_t num_experts, const std::string& flag);

// The priors the op judges tokens against. One prior for every token (alpha_E): priors = 1 and no
// domains. Per-domain priors (alpha_DE, row d = α of domain d's tokens): domains with the same α vector
// share one prior, so the CDF ranks are taken over all tokens judged against it — the loss is
//   L = Σ_g (T_g/T) · L_g,   ∂L/∂p_te = (T_g/T) · ∂L_g/∂p_te  for t in prior g,
// L_g the loss above over the T_g tokens of prior g. Priors are numbered by first appearance in
// domain order (the order the op sums them in). When every domain has distinct α this is
// Σ_d (T_d/T)·L_d; when all share one α it is exactly the one-prior loss.
struct DirichletPriorTable {
  std::vector<int32_t> prior_of_domain;  // [domains]; empty for one prior
  std::vector<double> alpha_PE;          // [priors, E]
  int64_t priors = 0;
  int64_t domains() const { return int64_t(prior_of_domain.size()); }
};
DirichletPriorTable dirichlet_prior_table(const std::vector<double>& alpha_E,
                                          const std::vector<std::vector<double>>& alpha_DE);

}  // namespace upcycle::model
