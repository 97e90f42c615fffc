// Reference kernels of the MoE routing and loss ops (backend.h, "MoE routing and losses"): the plain
// host loops the MoE layer ran before these became ops, kept as the oracle the cpu kernels are checked
// against (bit for bit where the cpu kernel promises the same arithmetic). Also the double-precision
// Dirichlet-prior loss on double probabilities, which the finite-difference tests differentiate.
// Non-goals: speed, threading.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace upcycle::backend::ref {

void moe_jitter_forward(float* x_noisy, float* noise, const float* x, int64_t n, uint64_t seed, double jitter);
void moe_jitter_backward(float* dx, const float* dx_noisy, const float* noise, int64_t n);
void moe_route(const Backend::MoeRouteOut& out, const float* probs_TE, const float* bias_E,
               const Backend::MoeRouteSpec& spec);
void moe_route_backward(float* dprobs_TE, const float* dweight_A, const Backend::MoeRouteOut& routing, int64_t kept,
                        const Backend::MoeRouteSpec& spec, double aux_coef, const double* dirichlet_dprobs_TE,
                        double dirichlet_coef);
void moe_aux_loss(double* loss, const float* probs_TE, const int64_t* counts_E, int64_t T, int64_t E);
void logsumexp_rows(double* lse_T, const float* x_TE, int64_t T, int64_t E);
void moe_z_loss(double* loss, const double* lse_T, int64_t T);
void moe_z_loss_backward(float* dlogits_TE, const float* probs_TE, const double* lse_T, int64_t T, int64_t E,
                         double coef);
void moe_shared_gate_forward(float* y_TD, const float* ys_TD, const float* sigma_T, int64_t T, int64_t D);
void moe_shared_gate_backward(float* dys_TD, float* dz_T, const float* dy_TD, const float* ys_TD,
                              const float* sigma_T, int64_t T, int64_t D);
void moe_router_stats(double* out, const float* probs_TE, int64_t T, int64_t E, bool normalize_rows);

// The Dirichlet-prior shaping loss of one prior α[E] over double p[T,E] (dirichlet_prior.h's L);
// dprobs_TE (null = skipped) is overwritten with ∂L/∂p. T = 0 gives 0.
double dirichlet_prior_loss(const double* probs_TE, int64_t T, int64_t E, const double* alpha_E, double* dprobs_TE);
// The op's grouped form on double p: prior_T[t] ∈ [0, priors) (null = all 0), L = Σ_g (T_g/T)·L_g.
double grouped_dirichlet_prior_loss(const double* probs_TE, int64_t T, int64_t E, const int32_t* prior_T,
                                    const double* alpha_PE, int64_t priors, double* dprobs_TE);
// Backend::dirichlet_prior_loss: p converted to double, then grouped_dirichlet_prior_loss.
void dirichlet_prior_loss_op(double* loss, double* dprobs_TE, const float* probs_TE, int64_t T, int64_t E,
                             const int32_t* domain_T, const int32_t* prior_of_domain, int64_t domains,
                             const double* alpha_PE, int64_t priors);

}  // namespace upcycle::backend::ref
