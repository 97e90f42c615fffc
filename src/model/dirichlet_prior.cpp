// Beta CDF and density, the prior's flag syntax, and the Dirichlet-prior shaping loss with its gradient
// (contract and sources in dirichlet_prior.h). Everything runs in double on the host: the loss needs a
// sort per expert over the batch's tokens (T·E·log T work), small beside the layer's matmuls.
#include "model/dirichlet_prior.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>
#include <sstream>

#include "core/error.h"

namespace upcycle::model {
namespace {

double log_beta_function(double a, double b) { return std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b); }

// The continued fraction of I_x(a, b) (modified Lentz): x^a (1−x)^b / (a·B(a, b)) · 1/(1 + d1/(1 + d2/…)),
//   d_{2m+1} = −(a+m)(a+b+m)x / ((a+2m)(a+2m+1)),  d_{2m} = m(b−m)x / ((a+2m−1)(a+2m)).
// It converges in O(√max(a, b)) terms for x < (a+1)/(a+b+2); beta_cdf uses the mirror side otherwise.
double incomplete_beta_fraction(double x, double a, double b) {
  constexpr double kTiny = 1e-300, kEps = 1e-15;
  auto guard = [](double v) { return std::fabs(v) < kTiny ? kTiny : v; };
  double c = 1.0, d = 1.0 / guard(1.0 - (a + b) * x / (a + 1.0)), h = d;
  for (int m = 1; m <= 10000; ++m) {
    const double m2 = 2.0 * m;
    const double even = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    d = 1.0 / guard(1.0 + even * d);
    c = guard(1.0 + even / c);
    h *= d * c;
    const double odd = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    d = 1.0 / guard(1.0 + odd * d);
    c = guard(1.0 + odd / c);
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1.0) < kEps) break;
  }
  return h;
}

// Density evaluation points: fp32 softmax outputs reach exactly 0 and 1, where f is infinite for α < 1.
constexpr double kDensityClamp = 1e-7;

}  // namespace

double beta_cdf(double x, double a, double b) {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  const double front = std::exp(a * std::log(x) + b * std::log1p(-x) - log_beta_function(a, b));
  if (x < (a + 1.0) / (a + b + 2.0)) return front * incomplete_beta_fraction(x, a, b) / a;
  return 1.0 - front * incomplete_beta_fraction(1.0 - x, b, a) / b;
}

double beta_pdf(double x, double a, double b) {
  return std::exp((a - 1.0) * std::log(x) + (b - 1.0) * std::log1p(-x) - log_beta_function(a, b));
}

std::vector<double> parse_dirichlet_prior(const std::string& text, int64_t num_experts, const std::string& flag) {
  std::vector<double> alpha;
  std::string s = text;
  std::replace(s.begin(), s.end(), ',', ' ');
  std::istringstream in(s);
  for (std::string word; in >> word;) {
    double v = 0;
    auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), v);
    if (ec != std::errc() || ptr != word.data() + word.size() || !(v > 0) || !std::isfinite(v))
      throw Error(flag + " " + text + ": each concentration α must be a positive number (got '" + word + "')");
    alpha.push_back(v);
  }
  if (alpha.empty()) throw Error(flag + ": expected α or α1,…,αE, got '" + text + "'");
  if (alpha.size() == 1) return std::vector<double>(size_t(num_experts), alpha[0]);
  if (int64_t(alpha.size()) != num_experts)
    throw Error(flag + " " + text + ": " + std::to_string(alpha.size()) + " concentrations for a model with " +
                std::to_string(num_experts) + " experts (give one α, or one per expert)");
  return alpha;
}

double dirichlet_prior_loss(const double* probs_TE, int64_t T, int64_t E, const std::vector<double>& alpha_E,
                            double* dprobs_TE) {
  if (dprobs_TE) std::fill_n(dprobs_TE, T * E, 0.0);
  if (T == 0 || E == 0) return 0.0;
  const double total_alpha = std::accumulate(alpha_E.begin(), alpha_E.end(), 0.0);
  std::vector<int64_t> order(static_cast<size_t>(T));
  double loss = 0.0;
  for (int64_t e = 0; e < E; ++e) {
    const double a = alpha_E[size_t(e)], b = total_alpha - a;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t s, int64_t t) { return probs_TE[s * E + e] < probs_TE[t * E + e]; });
    for (int64_t i = 0; i < T; ++i) {
      const int64_t t = order[size_t(i)];
      const double p = probs_TE[t * E + e];
      const double gap = beta_cdf(p, a, b) - double(i + 1) / double(T + 1);
      loss += gap * gap;
      if (dprobs_TE) {
        const double at = std::clamp(p, kDensityClamp, 1.0 - kDensityClamp);
        dprobs_TE[t * E + e] = 2.0 / double(E * T) * gap * beta_pdf(at, a, b);
      }
    }
  }
  return loss / double(E * T);
}

double domain_dirichlet_prior_loss(const double* probs_TE, int64_t T, int64_t E,
                                   const std::vector<std::vector<double>>& alpha_DE, const int32_t* domain_T,
                                   double* dprobs_TE) {
  if (dprobs_TE) std::fill_n(dprobs_TE, T * E, 0.0);
  // group_of[d]: the first domain with d's α vector, so domains sharing a prior are pooled.
  std::vector<size_t> group_of(alpha_DE.size());
  for (size_t d = 0; d < alpha_DE.size(); ++d)
    group_of[d] = size_t(std::find(alpha_DE.begin(), alpha_DE.end(), alpha_DE[d]) - alpha_DE.begin());
  double loss = 0.0;
  std::vector<int64_t> rows;
  std::vector<double> probs_GE, dprobs_GE;
  for (size_t g = 0; g < alpha_DE.size(); ++g) {
    if (group_of[g] != g) continue;
    rows.clear();
    for (int64_t t = 0; t < T; ++t) {
      UPCYCLE_CHECK(domain_T[t] >= 0 && size_t(domain_T[t]) < alpha_DE.size(), "Dirichlet prior: domain id out of range");
      if (group_of[size_t(domain_T[t])] == g) rows.push_back(t);
    }
    if (rows.empty()) continue;
    const int64_t G = int64_t(rows.size());
    probs_GE.resize(size_t(G * E));
    for (int64_t i = 0; i < G; ++i) std::copy_n(probs_TE + rows[size_t(i)] * E, E, probs_GE.begin() + i * E);
    dprobs_GE.resize(dprobs_TE ? size_t(G * E) : 0);
    const double weight = double(G) / double(T);
    loss += weight * dirichlet_prior_loss(probs_GE.data(), G, E, alpha_DE[g], dprobs_TE ? dprobs_GE.data() : nullptr);
    if (dprobs_TE)
      for (int64_t i = 0; i < G; ++i)
        for (int64_t e = 0; e < E; ++e) dprobs_TE[rows[size_t(i)] * E + e] = weight * dprobs_GE[size_t(i * E + e)];
  }
  return loss;
}

}  // namespace upcycle::model
