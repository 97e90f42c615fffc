// The Beta distribution's CDF and density, the scalar maths of the Dirichlet-prior shaping loss
// (model/dirichlet_prior.h): shared by the ref and cpu kernels of Backend::dirichlet_prior_loss.
// Non-goals: quantiles, vectorised forms.
#pragma once

namespace upcycle::backend {

// The regularised incomplete beta function I_x(a, b) (the CDF of Beta(a, b)) for x ∈ [0, 1], a, b > 0,
// to ~1e-14 relative: Lentz's continued fraction, on the side of x where it converges fast.
double beta_cdf(double x, double a, double b);
// The Beta(a, b) density x^(a−1)(1−x)^(b−1)/B(a, b) for x ∈ (0, 1).
double beta_pdf(double x, double a, double b);

// Density evaluation points are clamped to [kBetaDensityClamp, 1 − kBetaDensityClamp]: fp32 softmax
// outputs reach exactly 0 and 1, where the density of α < 1 is infinite.
inline constexpr double kBetaDensityClamp = 1e-7;

}  // namespace upcycle::backend
