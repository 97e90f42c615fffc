// The Dirichlet-prior shaping loss (model/dirichlet_prior.h; its double-precision ref kernels in
// backend/ref/ref_moe_routing.h, the op itself in moe_loss_ops_test.cpp), piece by piece:
//   - beta_cdf against closed forms: Beta(1, b) = 1 − (1−x)^b (the symmetric α = 1 prior's marginal
//     Beta(1, E−1)), Beta(a, 1) = x^a, Beta(2, 2), the arcsine laws Beta(½, ½) and Beta(½, 3/2) (α = ½,
//     E = 4), integer parameters as a binomial tail (α = 5, E = 4: Beta(5, 15)); beta_pdf as the
//     derivative of beta_cdf;
//   - the loss on hand-computed batches (uniform marginal; Beta(1, 2)) and one gradient element by hand;
//   - ∂L/∂p against central differences in double;
//   - per-domain priors: a hand-computed two-domain batch, the token-weighted sum of one-domain losses,
//     central differences, and domains sharing one α pooled (equal priors = the plain loss exactly);
//   - loss, gradient and the CDF at general α against PyTorch autograd + mpmath
//     (tests/reference/dirichlet_reference.py in the pinned reference environment);
//   - the flag syntax.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <numbers>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "backend/ref/ref_moe_routing.h"
#include "model/dirichlet_prior.h"
#include "support/expect_error.h"
#include "support/finite_differences.h"
#include "support/hf_reference.h"
#include "support/test_support.h"

namespace upcycle::model {
namespace {

// The loss of one prior and its per-domain form on double probabilities: the ref kernels, with the
// domain → prior table the MoE layer hands the op.
double dirichlet_prior_loss(const double* probs_TE, int64_t T, int64_t E, const std::vector<double>& alpha_E,
                            double* dprobs_TE) {
  return backend::ref::dirichlet_prior_loss(probs_TE, T, E, alpha_E.data(), dprobs_TE);
}
double domain_dirichlet_prior_loss(const double* probs_TE, int64_t T, int64_t E,
                                   const std::vector<std::vector<double>>& alpha_DE, const int32_t* domain_T,
                                   double* dprobs_TE) {
  const DirichletPriorTable table = dirichlet_prior_table({}, alpha_DE);
  std::vector<int32_t> prior_T;
  for (int64_t t = 0; t < T; ++t) prior_T.push_back(table.prior_of_domain[size_t(domain_T[t])]);
  return backend::ref::grouped_dirichlet_prior_loss(probs_TE, T, E, prior_T.data(), table.alpha_PE.data(),
                                                    table.priors, dprobs_TE);
}

const std::vector<double> kGrid = {1e-6, 0.01, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.99, 1 - 1e-6};

TEST(BetaCdf, SymmetricUniformPriorMarginalIsOneMinusPower) {
  for (int E = 2; E <= 8; ++E)
    for (double x : kGrid) EXPECT_NEAR(beta_cdf(x, 1.0, E - 1.0), 1 - std::pow(1 - x, E - 1), 1e-14) << E << " " << x;
}

TEST(BetaCdf, ClosedForms) {
  for (double x : kGrid) {
    SCOPED_TRACE(x);
    for (double a : {0.3, 0.75, 5.0}) EXPECT_NEAR(beta_cdf(x, a, 1.0), std::pow(x, a), 1e-14);
    EXPECT_NEAR(beta_cdf(x, 2, 2), 3 * x * x - 2 * x * x * x, 1e-14);
    EXPECT_NEAR(beta_cdf(x, 0.5, 0.5), 2 / std::numbers::pi * std::asin(std::sqrt(x)), 1e-13);
    EXPECT_NEAR(beta_cdf(x, 0.5, 1.5), 2 / std::numbers::pi * (std::asin(std::sqrt(x)) + std::sqrt(x * (1 - x))), 1e-13);
    // Integer a, b: I_x(a, b) = P(Binomial(a+b−1, x) ≥ a).
    double tail = 0;
    for (int j = 5; j <= 19; ++j) tail += std::exp(std::lgamma(20) - std::lgamma(j + 1) - std::lgamma(20 - j)) *
                                          std::pow(x, j) * std::pow(1 - x, 19 - j);
    EXPECT_NEAR(beta_cdf(x, 5, 15), tail, 1e-13);
    // 1 − x rounds by up to 1e-16, times a density up to ~1e4 at this grid's ends.
    EXPECT_NEAR(beta_cdf(x, 0.3, 0.9), 1 - beta_cdf(1 - x, 0.9, 0.3), 1e-11);
  }
  EXPECT_EQ(beta_cdf(0.0, 0.3, 0.9), 0.0);
  EXPECT_EQ(beta_cdf(1.0, 0.3, 0.9), 1.0);
}

TEST(BetaCdf, DensityIsTheDerivative) {
  for (auto [a, b] : {std::pair{0.3, 0.9}, {0.75, 2.25}, {1.0, 3.0}, {5.0, 15.0}, {2.0, 126.0}})
    for (double x : {0.02, 0.1, 0.3, 0.5, 0.8, 0.97}) {
      const double h = 1e-6, fd = (beta_cdf(x + h, a, b) - beta_cdf(x - h, a, b)) / (2 * h);
      EXPECT_NEAR(beta_pdf(x, a, b), fd, 1e-6 * std::max(1.0, fd)) << a << " " << b << " " << x;
    }
}

TEST(DirichletPriorLoss, HandComputedUniformMarginal) {
  // α = (1, 1): both marginals are Beta(1, 1), F(x) = x. Targets i/(T+1) = 1/4, 2/4, 3/4.
  // Expert 0 sorted 0.2, 0.5, 0.9 → gaps −0.05, 0, 0.15; expert 1 sorted 0.1, 0.5, 0.8 → −0.15, 0, 0.05.
  const std::vector<double> p = {0.2, 0.8, 0.5, 0.5, 0.9, 0.1};
  std::vector<double> grad(p.size());
  const double expected = (0.05 * 0.05 + 0.15 * 0.15 + 0.15 * 0.15 + 0.05 * 0.05) / (2 * 3);
  EXPECT_NEAR(dirichlet_prior_loss(p.data(), 3, 2, {1, 1}, grad.data()), expected, 1e-15);
  // ∂L/∂p = 2/(E·T)·gap·f with f = 1: token 2 is expert 0's largest (gap 0.15), expert 1's smallest (−0.15).
  EXPECT_NEAR(grad[4], 2.0 / 6 * 0.15, 1e-15);
  EXPECT_NEAR(grad[5], 2.0 / 6 * -0.15, 1e-15);
  EXPECT_NEAR(grad[2], 0.0, 1e-15);
}

TEST(DirichletPriorLoss, HandComputedSymmetricAlphaOneOfThreeExperts) {
  // α = 1, E = 3: marginals Beta(1, 2), F(x) = 1 − (1−x)². T = 2, targets 1/3, 2/3.
  const std::vector<double> p = {0.5, 0.3, 0.2, 0.1, 0.6, 0.3};
  auto F = [](double x) { return 1 - (1 - x) * (1 - x); };
  auto sq = [](double v) { return v * v; };
  const double expected = (sq(F(0.1) - 1.0 / 3) + sq(F(0.5) - 2.0 / 3) +   // expert 0: 0.1, 0.5
                           sq(F(0.3) - 1.0 / 3) + sq(F(0.6) - 2.0 / 3) +   // expert 1: 0.3, 0.6
                           sq(F(0.2) - 1.0 / 3) + sq(F(0.3) - 2.0 / 3)) /  // expert 2: 0.2, 0.3
                          6;
  EXPECT_NEAR(dirichlet_prior_loss(p.data(), 2, 3, {1, 1, 1}, nullptr), expected, 1e-15);
  EXPECT_NEAR(expected, 0.019, 1e-6);  // the sum by hand: 0.1140 / 6
}

// Softmax rows of random logits (scale 1.5): probabilities spread over (0, 1) without ties.
std::vector<double> random_probs(int64_t T, int64_t E, uint64_t seed) {
  const std::vector<float> z = test::random_floats(size_t(T * E), seed, 1.5f, "dirichlet");
  std::vector<double> p(z.size());
  for (int64_t t = 0; t < T; ++t) {
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += p[size_t(t * E + e)] = std::exp(double(z[size_t(t * E + e)]));
    for (int64_t e = 0; e < E; ++e) p[size_t(t * E + e)] /= sum;
  }
  return p;
}

TEST(DirichletPriorLoss, GradientMatchesFiniteDifferences) {
  constexpr int64_t T = 9, E = 4;
  for (const std::vector<double>& alpha : {std::vector<double>{0.75, 0.75, 0.75, 0.75}, {0.5, 0.8, 1.5, 3.0}}) {
    std::vector<double> p = random_probs(T, E, 3), grad(p.size());
    dirichlet_prior_loss(p.data(), T, E, alpha, grad.data());
    const auto fd = test::central_differences(p, [&] { return dirichlet_prior_loss(p.data(), T, E, alpha, nullptr); }, 1e-7);
    EXPECT_TRUE(test::within_tolerance(grad, fd, 1e-6));
    EXPECT_GT(test::max_abs(grad), 1e-2);
  }
}

TEST(DomainDirichletPriorLoss, HandComputedTwoDomains) {
  // Domain 0 (tokens 0, 2, 4): α = (1, 1), the batch of HandComputedUniformMarginal (F = x).
  // Domain 1 (tokens 1, 3): α = (2, 1), marginals Beta(2, 1) (F = x²) and Beta(1, 2) (F = 1 − (1−x)²),
  // targets 1/3, 2/3. Expert 0 sorted 0.3, 0.6 → F 0.09, 0.36; expert 1 sorted 0.4, 0.7 → F 0.64, 0.91.
  // L = 3/5·L_0 + 2/5·L_1.
  const std::vector<double> p = {0.2, 0.8, 0.6, 0.4, 0.5, 0.5, 0.3, 0.7, 0.9, 0.1};
  const std::vector<int32_t> domain = {0, 1, 0, 1, 0};
  auto sq = [](double v) { return v * v; };
  const double l0 = (sq(0.05) + sq(0.15) + sq(0.15) + sq(0.05)) / (2 * 3);
  const double l1 = (sq(0.09 - 1.0 / 3) + sq(0.36 - 2.0 / 3) + sq(0.64 - 1.0 / 3) + sq(0.91 - 2.0 / 3)) / (2 * 2);
  std::vector<double> grad(p.size());
  EXPECT_NEAR(domain_dirichlet_prior_loss(p.data(), 5, 2, {{1, 1}, {2, 1}}, domain.data(), grad.data()),
              0.6 * l0 + 0.4 * l1, 1e-15);
  // ∂L/∂p = (T_d/T)·2/(E·T_d)·gap·f: token 4 is domain 0's largest p_0 (gap 0.15, f = 1); token 3 is
  // domain 1's smallest p_0 (gap 0.09 − 1/3, f = 2x = 0.6) and its largest p_1 (gap 0.91 − 2/3, f = 2(1−x)).
  EXPECT_NEAR(grad[8], 0.6 * 2.0 / 6 * 0.15, 1e-15);
  EXPECT_NEAR(grad[6], 0.4 * 2.0 / 4 * (0.09 - 1.0 / 3) * 0.6, 1e-15);
  EXPECT_NEAR(grad[7], 0.4 * 2.0 / 4 * (0.91 - 2.0 / 3) * 0.6, 1e-15);
}

// Rows of probs_TE whose domain is d, in token order.
std::vector<double> rows_of(const std::vector<double>& p, const std::vector<int32_t>& domain, int32_t d, int64_t E) {
  std::vector<double> out;
  for (size_t t = 0; t < domain.size(); ++t)
    if (domain[t] == d) out.insert(out.end(), p.begin() + int64_t(t) * E, p.begin() + int64_t(t + 1) * E);
  return out;
}

TEST(DomainDirichletPriorLoss, IsTheTokenWeightedSumOfOneDomainLosses) {
  constexpr int64_t T = 13, E = 4;
  const std::vector<std::vector<double>> alpha = {{2, 2, 0.5, 0.5}, {0.5, 0.5, 2, 2}, {0.75, 0.75, 0.75, 0.75}};
  const std::vector<int32_t> domain = {0, 1, 2, 0, 1, 1, 2, 0, 0, 1, 2, 1, 0};  // 5, 5 and 3 tokens
  const std::vector<double> p = random_probs(T, E, 7);
  std::vector<double> grad(p.size());
  const double loss = domain_dirichlet_prior_loss(p.data(), T, E, alpha, domain.data(), grad.data());
  double expected = 0;
  std::vector<double> expected_grad(p.size());
  for (int32_t d = 0; d < 3; ++d) {
    const std::vector<double> rows = rows_of(p, domain, d, E);
    const int64_t n = int64_t(rows.size()) / E;
    ASSERT_GT(n, 1) << d;
    std::vector<double> g(rows.size());
    expected += double(n) / T * dirichlet_prior_loss(rows.data(), n, E, alpha[size_t(d)], g.data());
    for (int64_t t = 0, i = 0; t < T; ++t)
      if (domain[size_t(t)] == d) {
        for (int64_t e = 0; e < E; ++e) expected_grad[size_t(t * E + e)] = double(n) / T * g[size_t(i * E + e)];
        ++i;
      }
  }
  EXPECT_NEAR(loss, expected, 1e-15);
  EXPECT_TRUE(test::within_tolerance(grad, expected_grad, 1e-15));
  // A domain absent from the batch contributes nothing (nor does its row of α).
  std::vector<int32_t> two = domain;
  for (int32_t& d : two) d = d == 2 ? 1 : d;
  EXPECT_EQ(domain_dirichlet_prior_loss(p.data(), T, E, alpha, two.data(), nullptr),
            domain_dirichlet_prior_loss(p.data(), T, E, {alpha[0], alpha[1]}, two.data(), nullptr));
}

TEST(DomainDirichletPriorLoss, GradientMatchesFiniteDifferences) {
  constexpr int64_t T = 11, E = 4;
  const std::vector<std::vector<double>> alpha = {{2, 2, 0.5, 0.5}, {0.5, 0.8, 1.5, 3.0}};
  const std::vector<int32_t> domain = {0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1};
  std::vector<double> p = random_probs(T, E, 11), grad(p.size());
  domain_dirichlet_prior_loss(p.data(), T, E, alpha, domain.data(), grad.data());
  const auto fd = test::central_differences(
      p, [&] { return domain_dirichlet_prior_loss(p.data(), T, E, alpha, domain.data(), nullptr); }, 1e-7);
  EXPECT_TRUE(test::within_tolerance(grad, fd, 1e-6));
  EXPECT_GT(test::max_abs(grad), 1e-2);
}

// Domains that share one α are pooled (ranks over all their tokens), so equal priors everywhere give
// the plain loss bit for bit; a third domain with its own α then only splits off its tokens.
TEST(DomainDirichletPriorLoss, EqualPriorsEqualThePlainLossExactly) {
  constexpr int64_t T = 12, E = 4;
  const std::vector<double> alpha = {0.5, 0.8, 1.5, 3.0};
  const std::vector<int32_t> domain = {0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0};
  const std::vector<double> p = random_probs(T, E, 13);
  std::vector<double> grad(p.size()), plain_grad(p.size());
  const double plain = dirichlet_prior_loss(p.data(), T, E, alpha, plain_grad.data());
  EXPECT_EQ(domain_dirichlet_prior_loss(p.data(), T, E, {alpha, alpha}, domain.data(), grad.data()), plain);
  EXPECT_EQ(grad, plain_grad);
  std::vector<int32_t> three = domain;
  three[0] = three[5] = three[11] = 2;
  const std::vector<double> other = {2, 2, 0.5, 0.5};
  std::vector<int32_t> pooled = three;
  for (int32_t& d : pooled) d = d == 2 ? 1 : 0;
  EXPECT_EQ(domain_dirichlet_prior_loss(p.data(), T, E, {alpha, alpha, other}, three.data(), nullptr),
            domain_dirichlet_prior_loss(p.data(), T, E, {alpha, other}, pooled.data(), nullptr));
}

TEST(DirichletPriorLoss, MatchesTorchAutogradAndMpmath) {
  ASSERT_TRUE(std::filesystem::exists(test::kReferencePython))
      << test::kReferencePython << " is missing: run scripts/setup (it builds the reference Python environment)";
  struct Case {
    int64_t T, E;
    std::vector<double> alpha;
  };
  const std::vector<Case> cases = {{16, 4, {0.3, 0.3, 0.3, 0.3}}, {16, 4, {5, 5, 5, 5}}, {12, 8, std::vector<double>(8, 0.75)},
                                   {10, 4, {0.5, 0.5, 2, 2}}};
  nlohmann::json spec = {{"cases", nlohmann::json::array()}};
  std::vector<std::vector<double>> probs;
  for (size_t i = 0; i < cases.size(); ++i) {
    probs.push_back(random_probs(cases[i].T, cases[i].E, 10 + i));
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t t = 0; t < cases[i].T; ++t)
      rows.push_back(std::vector<double>(probs[i].begin() + t * cases[i].E, probs[i].begin() + (t + 1) * cases[i].E));
    spec["cases"].push_back({{"probs", rows}, {"alpha", cases[i].alpha}});
  }
  test::ScratchDir dir;
  std::ofstream(dir / "case.json") << spec.dump();
  const std::string cmd = "'" + test::kReferencePython.string() + "' '" +
                          (test::kReferenceDir / "dirichlet_reference.py").string() + "' '" +
                          (dir / "case.json").string() + "' > '" + (dir / "torch.json").string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto torch = nlohmann::json::parse(test::read_bytes(dir / "torch.json"))["cases"];
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    std::vector<double> grad(probs[i].size());
    const double loss = dirichlet_prior_loss(probs[i].data(), c.T, c.E, c.alpha, grad.data());
    EXPECT_NEAR(loss, torch[i]["loss"].get<double>(), 1e-13 * std::max(1.0, loss));
    const double total = std::accumulate(c.alpha.begin(), c.alpha.end(), 0.0);
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t e = 0; e < c.E; ++e) {
        const double g = torch[i]["grad"][t][e].get<double>(), cdf = torch[i]["cdf"][t][e].get<double>();
        EXPECT_NEAR(grad[size_t(t * c.E + e)], g, 1e-10 * std::max(1.0, std::fabs(g))) << t << " " << e;
        EXPECT_NEAR(beta_cdf(probs[i][size_t(t * c.E + e)], c.alpha[size_t(e)], total - c.alpha[size_t(e)]), cdf, 1e-13);
      }
  }
}

TEST(DirichletPrior, FlagSyntax) {
  EXPECT_EQ(parse_dirichlet_prior("0.75", 4, "--dirichlet-prior"), (std::vector<double>{0.75, 0.75, 0.75, 0.75}));
  EXPECT_EQ(parse_dirichlet_prior("0.5,0.5,2,2", 4, "--dirichlet-prior"), (std::vector<double>{0.5, 0.5, 2, 2}));
  EXPECT_UPCYCLE_ERROR(parse_dirichlet_prior("0", 4, "--dirichlet-prior"), "positive number", "");
  EXPECT_UPCYCLE_ERROR(parse_dirichlet_prior("-1", 4, "--dirichlet-prior"), "positive number", "");
  EXPECT_UPCYCLE_ERROR(parse_dirichlet_prior("x", 4, "--dirichlet-prior"), "positive number", "");
  EXPECT_UPCYCLE_ERROR(parse_dirichlet_prior("inf", 4, "--dirichlet-prior"), "positive number", "");
  EXPECT_UPCYCLE_ERROR(parse_dirichlet_prior("1,2,3", 4, "--dirichlet-prior"), "3 concentrations for a model with 4",
                       "");
  EXPECT_UPCYCLE_ERROR(parse_dirichlet_prior(" ", 4, "--dirichlet-prior"), "expected α", "");
}

}  // namespace
}  // namespace upcycle::model
