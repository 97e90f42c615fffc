// Robust fits of saturating power laws, the family every scaling law `upcycle plan` uses:
//   L̂(φ) = exp(β·φ) + exp(e),  i.e. log L̂ = logaddexp(Σ_k β_k φ_k, e)
// with per-point features φ (for L = A·C^−a + E: φ = [1, −ln C], β = [ln A, a]). The fit minimises the
// Huber loss of the log residuals log L̂ − log L (Hoffmann et al. 2022, δ = 1e-3) by Levenberg–Marquardt
// on iteratively reweighted least squares, from several starting points, keeping the best. Parameters
// live in log space (ln A, ln E) so A and E stay positive without constraints. Deterministic: no
// random numbers, the starts are given. Non-goals: bounds on the exponents, general models.
#pragma once

#include <cstddef>
#include <vector>

namespace upcycle::report {

struct ScalingFit {
  std::vector<double> theta;                    // β_0 … β_{p−2}, then e (p parameters)
  std::vector<std::vector<double>> covariance;  // p × p, s²·(JᵀJ)⁻¹ at the optimum; NaN if singular
  std::vector<bool> inert;  // per parameter: no longer moves the prediction (a term at its bound, σ NaN)
  double objective = 0;                         // Σ Huber(r_i)
  double rms_log_residual = 0;                  // sqrt(mean r_i²), unweighted
  size_t points = 0;
  bool converged = false;

  double sigma(size_t k) const;  // sqrt(covariance[k][k]), NaN when not identifiable
};

// log L̂ of one point.
double scaling_log_predict(const std::vector<double>& theta, const std::vector<double>& phi);
// Fits the model to (phi_i, loss_i), trying every start (each a full theta) and keeping the lowest
// objective. Needs more points than parameters; losses must be > 0.
ScalingFit fit_scaling_law(const std::vector<std::vector<double>>& phi, const std::vector<double>& loss,
                           const std::vector<std::vector<double>>& starts, double huber_delta = 1e-3);

// Solves A x = b for a small dense symmetric positive (semi)definite A by Gaussian elimination with
// partial pivoting; false when A is singular to working precision.
bool solve_small(std::vector<std::vector<double>> a, std::vector<double> b, std::vector<double>& x);

}  // namespace upcycle::report
