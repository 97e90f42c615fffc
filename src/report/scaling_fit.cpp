// Levenberg–Marquardt with Huber weights for the log-space power laws of scaling_fit.h.
// Why IRLS: the Huber objective's gradient is Jᵀ(w∘r) with w_i = min(1, δ/|r_i|), so a weighted
// Gauss–Newton step is a Newton-like step on the Huber loss; a step is kept only if it lowers the
// Huber objective itself. The reported covariance is the classic nonlinear-regression one,
// s²·(JᵀJ)⁻¹ with s² = Σ r²/(n − p), taken at the Huber optimum: it says how well the data pin the
// parameters down, independent of δ.
#include "report/scaling_fit.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace upcycle::report {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double huber(double r, double delta) {
  const double a = std::fabs(r);
  return a <= delta ? 0.5 * r * r : delta * (a - 0.5 * delta);
}

struct Linearised {
  std::vector<double> r;               // log L̂ − log L
  std::vector<std::vector<double>> j;  // n × p
  double objective = 0;
};

Linearised linearise(const std::vector<double>& theta, const std::vector<std::vector<double>>& phi,
                     const std::vector<double>& log_loss, double delta) {
  const size_t n = phi.size(), p = theta.size();
  Linearised l;
  l.r.resize(n);
  l.j.assign(n, std::vector<double>(p, 0.0));
  for (size_t i = 0; i < n; ++i) {
    double u = 0;
    for (size_t k = 0; k + 1 < p; ++k) u += theta[k] * phi[i][k];
    const double e = theta[p - 1], m = std::max(u, e);
    const double lse = m + std::log(std::exp(u - m) + std::exp(e - m));
    const double share = std::exp(u - lse);  // ∂ log L̂ / ∂u: the power term's share of L̂
    for (size_t k = 0; k + 1 < p; ++k) l.j[i][k] = share * phi[i][k];
    l.j[i][p - 1] = 1 - share;
    l.r[i] = lse - log_loss[i];
    l.objective += huber(l.r[i], delta);
  }
  return l;
}

double objective_at(const std::vector<double>& theta, const std::vector<std::vector<double>>& phi,
                    const std::vector<double>& log_loss, double delta) {
  double o = 0;
  for (size_t i = 0; i < phi.size(); ++i) o += huber(scaling_log_predict(theta, phi[i]) - log_loss[i], delta);
  return std::isfinite(o) ? o : std::numeric_limits<double>::infinity();
}

// JᵀWJ and JᵀW r (w = 1 for every point when `delta` is infinite).
void normal_equations(const Linearised& l, double delta, std::vector<std::vector<double>>& h, std::vector<double>& g) {
  const size_t p = l.j.empty() ? 0 : l.j[0].size();
  h.assign(p, std::vector<double>(p, 0.0));
  g.assign(p, 0.0);
  for (size_t i = 0; i < l.r.size(); ++i) {
    const double a = std::fabs(l.r[i]);
    const double w = a <= delta ? 1.0 : delta / a;
    for (size_t x = 0; x < p; ++x) {
      g[x] += w * l.j[i][x] * l.r[i];
      for (size_t y = 0; y < p; ++y) h[x][y] += w * l.j[i][x] * l.j[i][y];
    }
  }
}

ScalingFit fit_from(std::vector<double> theta, const std::vector<std::vector<double>>& phi,
                    const std::vector<double>& log_loss, double delta) {
  const size_t p = theta.size();
  double lambda = 1e-3;
  Linearised l = linearise(theta, phi, log_loss, delta);
  ScalingFit fit;
  for (int iter = 0; iter < 1000; ++iter) {
    std::vector<std::vector<double>> h;
    std::vector<double> g;
    normal_equations(l, delta, h, g);
    bool improved = false;
    while (lambda < 1e12) {
      std::vector<std::vector<double>> damped = h;
      for (size_t k = 0; k < p; ++k) damped[k][k] += lambda * std::max(h[k][k], 1e-12);
      std::vector<double> step;
      std::vector<double> minus_g(p);
      for (size_t k = 0; k < p; ++k) minus_g[k] = -g[k];
      if (solve_small(damped, minus_g, step)) {
        std::vector<double> next = theta;
        for (size_t k = 0; k < p; ++k) next[k] += step[k];
        const double o = objective_at(next, phi, log_loss, delta);
        if (o < l.objective) {
          const double gain = l.objective - o;
          double biggest = 0;
          for (double s : step) biggest = std::max(biggest, std::fabs(s));
          theta = std::move(next);
          l = linearise(theta, phi, log_loss, delta);
          lambda = std::max(lambda / 3, 1e-12);
          improved = true;
          if (gain <= 1e-15 * (l.objective + 1e-300) || biggest < 1e-12) fit.converged = true;
          break;
        }
      }
      lambda *= 4;
    }
    if (!improved) fit.converged = true;  // no descent direction left: a (local) minimum
    if (fit.converged) break;
  }
  fit.theta = theta;
  fit.objective = l.objective;
  return fit;
}

}  // namespace

double ScalingFit::sigma(size_t k) const {
  if (k >= covariance.size() || !(covariance[k][k] >= 0)) return kNaN;
  return std::sqrt(covariance[k][k]);
}

double scaling_log_predict(const std::vector<double>& theta, const std::vector<double>& phi) {
  const size_t p = theta.size();
  double u = 0;
  for (size_t k = 0; k + 1 < p; ++k) u += theta[k] * phi[k];
  const double e = theta[p - 1], m = std::max(u, e);
  return m + std::log(std::exp(u - m) + std::exp(e - m));
}

bool solve_small(std::vector<std::vector<double>> a, std::vector<double> b, std::vector<double>& x) {
  const size_t n = b.size();
  double scale = 0;
  for (const auto& row : a)
    for (double v : row) scale = std::max(scale, std::fabs(v));
  if (!(scale > 0) || !std::isfinite(scale)) return false;
  for (size_t c = 0; c < n; ++c) {
    size_t pivot = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r][c]) > std::fabs(a[pivot][c])) pivot = r;
    if (std::fabs(a[pivot][c]) <= 1e-14 * scale) return false;
    std::swap(a[c], a[pivot]);
    std::swap(b[c], b[pivot]);
    for (size_t r = c + 1; r < n; ++r) {
      const double f = a[r][c] / a[c][c];
      for (size_t k = c; k < n; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  x.assign(n, 0.0);
  for (size_t c = n; c-- > 0;) {
    double s = b[c];
    for (size_t k = c + 1; k < n; ++k) s -= a[c][k] * x[k];
    x[c] = s / a[c][c];
  }
  return true;
}

ScalingFit fit_scaling_law(const std::vector<std::vector<double>>& phi, const std::vector<double>& loss,
                           const std::vector<std::vector<double>>& starts, double huber_delta) {
  UPCYCLE_CHECK(!starts.empty() && phi.size() == loss.size(), "fit_scaling_law: no starts or mismatched data");
  const size_t n = phi.size(), p = starts[0].size();
  UPCYCLE_CHECK(n > p, "fit_scaling_law: needs more points than parameters");
  std::vector<double> log_loss(n);
  for (size_t i = 0; i < n; ++i) {
    UPCYCLE_CHECK(loss[i] > 0 && phi[i].size() + 1 == p, "fit_scaling_law: loss must be > 0, features p − 1");
    log_loss[i] = std::log(loss[i]);
  }
  ScalingFit best;
  best.objective = std::numeric_limits<double>::infinity();
  for (const auto& start : starts) {
    if (!std::isfinite(objective_at(start, phi, log_loss, huber_delta))) continue;
    ScalingFit f = fit_from(start, phi, log_loss, huber_delta);
    if (f.objective < best.objective) best = std::move(f);
  }
  UPCYCLE_CHECK(!best.theta.empty(), "fit_scaling_law: every start gave a non-finite loss");
  best.points = n;
  // Covariance of the unweighted Gauss–Newton problem at the optimum.
  const Linearised l = linearise(best.theta, phi, log_loss, huber_delta);
  double ss = 0;
  for (double r : l.r) ss += r * r;
  best.rms_log_residual = std::sqrt(ss / double(n));
  std::vector<std::vector<double>> h;
  std::vector<double> g;
  normal_equations(l, std::numeric_limits<double>::infinity(), h, g);
  // A term below 0.1 % of every prediction (E → 0 under a power term that carries the whole loss, or
  // the reverse) sits at its bound: its parameters are left out of the inversion, σ NaN, so the others
  // keep their σ instead of all becoming singular. j[i][p−1] is E's share of L̂_i.
  double e_share = 0, power_share = 0;
  for (const auto& row : l.j) e_share = std::max(e_share, row[p - 1]), power_share = std::max(power_share, 1 - row[p - 1]);
  best.inert.assign(p, false);
  std::vector<size_t> free;
  for (size_t k = 0; k < p; ++k) {
    best.inert[k] = (k + 1 == p ? e_share : power_share) < 1e-3;
    if (!best.inert[k]) free.push_back(k);
  }
  const size_t q = free.size();
  const double s2 = ss / double(n - q);
  best.covariance.assign(p, std::vector<double>(p, kNaN));
  std::vector<std::vector<double>> reduced(q, std::vector<double>(q)), inverse(q, std::vector<double>(q, 0.0));
  for (size_t r = 0; r < q; ++r)
    for (size_t c = 0; c < q; ++c) reduced[r][c] = h[free[r]][free[c]];
  bool ok = q > 0;
  for (size_t c = 0; c < q && ok; ++c) {
    std::vector<double> unit(q, 0.0), column;
    unit[c] = 1;
    ok = solve_small(reduced, unit, column);
    for (size_t r = 0; r < q && ok; ++r) inverse[r][c] = column[r];
  }
  if (ok)
    for (size_t r = 0; r < q; ++r)
      for (size_t c = 0; c < q; ++c) best.covariance[free[r]][free[c]] = s2 * inverse[r][c];
  return best;
}

}  // namespace upcycle::report
