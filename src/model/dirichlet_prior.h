// Dirichlet-prior shaping loss (DPSL; Mirvakhabova, Ehteshami Bejnordi et al., arXiv 2510.01185) for an
// MoE router, on host memory like the aux and z losses (moe_routing.h). A target prior Dir(α_1..α_E) on
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
// not be read here. That code clips the density to [1e-3, 100] for its gradient; this file uses the exact
// density, evaluated at p clamped to [1e-7, 1 − 1e-7] (fp32 probabilities saturate at 0 and 1, where the
// density of α < 1 is infinite).
// Per-domain (asymmetric) priors, e.g. larger α for the experts meant for one domain's tokens: each token
// is judged against its domain's prior (domain_dirichlet_prior_loss).
// Non-goals: learnable α, Beta quantiles.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace upcycle::model {

// The regularised incomplete beta function I_x(a, b) (the CDF of Beta(a, b)) for x ∈ [0, 1], a, b > 0,
// to ~1e-14 relative: Lentz's continued fraction, on the side of x where it converges fast.
double beta_cdf(double x, double a, double b);
// The Beta(a, b) density x^(a−1)(1−x)^(b−1)/B(a, b) for x ∈ (0, 1).
double beta_pdf(double x, double a, double b);

// α per expert from "A" (symmetric: every expert α = A) or "A1,A2,…,AE" (one per expert); each α > 0
// and finite. Error naming `flag` when malformed or when a list's length is not num_experts.
std::vector<double> parse_dirichlet_prior(const std::string& text, int64_t num_experts, const std::string& flag);

// L above for p[T,E] (rows: tokens) and α[E]. When dprobs_TE is non-null it is overwritten with ∂L/∂p
// (size T·E). T = 0 gives 0.
double dirichlet_prior_loss(const double* probs_TE, int64_t T, int64_t E, const std::vector<double>& alpha_E,
                            double* dprobs_TE);

// The per-domain form: token t belongs to domain domain_T[t] ∈ [0, alpha_DE.size()), whose prior is
// alpha_DE[domain_T[t]]. Tokens whose domains have the same α vector form one group g (so the CDF ranks
// are taken over all tokens judged against one prior), and
//   L = Σ_g (T_g/T) · L_g,   L_g = dirichlet_prior_loss over the T_g tokens of group g,
//   ∂L/∂p_te = (T_g/T) · ∂L_g/∂p_te  for t in g.
// When every domain has distinct α this is Σ_d (T_d/T)·L_d; when all share one α it is exactly
// dirichlet_prior_loss (one group, weight 1). dprobs_TE as above.
double domain_dirichlet_prior_loss(const double* probs_TE, int64_t T, int64_t E,
                                   const std::vector<std::vector<double>>& alpha_DE, const int32_t* domain_T,
                                   double* dprobs_TE);

}  // namespace upcycle::model
