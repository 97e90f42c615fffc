// Hand-computed values of the MoE loss and helper ops of backend.h ("MoE routing and losses") on the
// ref backend — the oracle the op-case table (op_cases_moe_routing.cpp) compares every backend with,
// and where the gradients meet finite differences:
//   - jitter: the noise is CounterRng(seed, "moe_jitter").uniform(i) mapped to [1−j, 1+j], the same
//     values for any n and seed-for-seed; its backward is the noise times the incoming gradient;
//   - logsumexp_rows against log(Σ exp) by hand (also at logits of 1000, where a naive sum overflows),
//     the z loss as the mean of their squares;
//   - the aux loss and the shared-expert gate's forward by hand;
//   - the Dirichlet-prior op on float scores equals the double kernel on the same values, with one
//     prior, per-domain priors (two domains sharing one α) and T = 1; a bad domain id is refused;
//   - router statistics by hand: uniform rows (entropy ln E, top-1 1/E), one-hot rows (0, 1), and sigmoid
//     scores normalised per row.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/ref/ref_moe_routing.h"
#include "core/rng.h"
#include "support/backend_test_support.h"

namespace upcycle::backend {
namespace {

std::unique_ptr<Backend> ref_backend() { return make_backend(BackendKind::kRef); }

TEST(MoeJitterOp, CounterNoiseInRangeAndBackward) {
  const int64_t n = 1000;
  const double j = 0.2;
  const std::vector<float> x = test::random_floats(size_t(n), 3);
  const CounterRng rng(77, "moe_jitter");
  auto ref = ref_backend();
  Backend& be = *ref;
  {
    const auto size = static_cast<size_t>(n);
    std::vector<float> xn(size), noise(size);
    be.moe_jitter_forward(xn.data(), noise.data(), x.data(), n, 77, j);
    for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{517}, n - 1}) {
      EXPECT_EQ(noise[size_t(i)], float(1.0 - j + 2.0 * j * rng.uniform(uint64_t(i))));
      EXPECT_EQ(xn[size_t(i)], x[size_t(i)] * noise[size_t(i)]);
    }
    for (float v : noise) EXPECT_TRUE(v >= 0.8f && v <= 1.2f) << v;
    std::vector<float> shorter(7), shorter_noise(7);  // counter i is element i, whatever n
    be.moe_jitter_forward(shorter.data(), shorter_noise.data(), x.data(), 7, 77, j);
    EXPECT_EQ(shorter_noise, std::vector<float>(noise.begin(), noise.begin() + 7));
    std::vector<float> dx(size_t(n), 1.0f);
    const std::vector<float> dxn = test::random_floats(size_t(n), 4);
    be.moe_jitter_backward(dx.data(), dxn.data(), noise.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(dx[size_t(i)], 1.0f + dxn[size_t(i)] * noise[size_t(i)]);
  }
}

TEST(LogsumexpRowsOp, HandValuesAndLargeLogits) {
  const std::vector<float> x = {0.0f, 0.0f, 0.0f,  1000.0f, 1000.0f, 999.0f,  -3.0f, 2.0f, 0.5f};
  auto ref = ref_backend();
  Backend& be = *ref;
  {
    std::vector<double> lse(3);
    be.logsumexp_rows(lse.data(), x.data(), 3, 3);
    EXPECT_NEAR(lse[0], std::log(3.0), 1e-15);
    EXPECT_NEAR(lse[1], 1000.0 + std::log(2.0 + std::exp(-1.0)), 1e-12);
    EXPECT_NEAR(lse[2], std::log(std::exp(-3.0) + std::exp(2.0) + std::exp(0.5)), 1e-14);
    double z = 0;
    be.moe_z_loss(&z, lse.data(), 3);
    EXPECT_NEAR(z, (lse[0] * lse[0] + lse[1] * lse[1] + lse[2] * lse[2]) / 3.0, 1e-9);
    be.moe_z_loss(&z, lse.data(), 0);
    EXPECT_EQ(z, 0.0);
  }
}

TEST(MoeAuxLossOp, HandValue) {
  // p rows (0.5, 0.5, 0), (0.25, 0.25, 0.5); counts (1, 2, 1): E/A·Σ count·P = 3/4·(0.375 + 0.75 + 0.25).
  const std::vector<float> p = {0.5f, 0.5f, 0.0f, 0.25f, 0.25f, 0.5f};
  const std::vector<int64_t> counts = {1, 2, 1};
  auto be = ref_backend();
  double loss = -1;
  be->moe_aux_loss(&loss, p.data(), counts.data(), 2, 3);
  EXPECT_EQ(loss, 0.75 * (0.375 + 0.75 + 0.25));
  be->moe_aux_loss(&loss, p.data(), counts.data(), 0, 3);
  EXPECT_EQ(loss, 0.0);
}

TEST(MoeSharedGateOp, ForwardByHand) {
  const int64_t T = 4, D = 67;
  const std::vector<float> z = test::random_floats(size_t(T), 1, 2.0f), ys = test::random_floats(size_t(T * D), 2);
  auto be = ref_backend();
  std::vector<float> sigma(static_cast<size_t>(T));
  be->sigmoid_forward(sigma.data(), z.data(), T);
  for (int64_t t = 0; t < T; ++t) EXPECT_FLOAT_EQ(sigma[size_t(t)], float(1.0 / (1.0 + std::exp(-double(z[size_t(t)])))));
  std::vector<float> y(size_t(T * D), 1.0f);
  be->moe_shared_gate_forward(y.data(), ys.data(), sigma.data(), T, D);
  for (int64_t i = 0; i < T * D; ++i) EXPECT_EQ(y[size_t(i)], 1.0f + sigma[size_t(i / D)] * ys[size_t(i)]);
}

TEST(DirichletPriorOp, EqualsTheDoubleKernelOnTheSameScores) {
  const int64_t T = 23, E = 4;
  std::vector<float> p(size_t(T * E));
  make_backend(BackendKind::kRef)->softmax_rows(p.data(), test::random_floats(p.size(), 8, 1.5f).data(), T, E);
  const std::vector<double> pd(p.begin(), p.end());
  // Three domains, 0 and 2 sharing α: two priors, numbered by first appearance.
  const std::vector<double> alpha_PE = {0.5, 0.5, 0.5, 0.5, 3, 1, 1, 0.7};
  const std::vector<int32_t> prior_of_domain = {0, 1, 0};
  std::vector<int32_t> domain_T(static_cast<size_t>(T)), prior_T(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) domain_T[size_t(t)] = int32_t((t * 7) % 3), prior_T[size_t(t)] = prior_of_domain[size_t(domain_T[size_t(t)])];
  auto ref = ref_backend();
  Backend& be = *ref;
  {
    for (int64_t tokens : {T, int64_t{1}}) {
      SCOPED_TRACE(tokens);
      // One prior for every token.
      double loss = 0;
      std::vector<double> grad(size_t(tokens * E)), want(grad.size());
      be.dirichlet_prior_loss(&loss, grad.data(), p.data(), tokens, E, nullptr, nullptr, 0, alpha_PE.data(), 1);
      EXPECT_EQ(loss, ref::dirichlet_prior_loss(pd.data(), tokens, E, alpha_PE.data(), want.data()));
      EXPECT_EQ(grad, want);
      // Per-domain priors.
      be.dirichlet_prior_loss(&loss, grad.data(), p.data(), tokens, E, domain_T.data(), prior_of_domain.data(), 3,
                              alpha_PE.data(), 2);
      EXPECT_EQ(loss, ref::grouped_dirichlet_prior_loss(pd.data(), tokens, E, prior_T.data(), alpha_PE.data(), 2,
                                                        want.data()));
      EXPECT_EQ(grad, want);
      EXPECT_GT(loss, 0.0);
    }
    std::vector<int32_t> bad = domain_T;
    bad[3] = 3;
    double loss = 0;
    EXPECT_THROW(be.dirichlet_prior_loss(&loss, nullptr, p.data(), T, E, bad.data(), prior_of_domain.data(), 3,
                                         alpha_PE.data(), 2),
                 std::logic_error);
  }
}

TEST(MoeRouterStatsOp, HandValues) {
  const int64_t E = 4;
  const std::vector<float> uniform(2 * E, 0.25f), one_hot = {0, 1, 0, 0, 1, 0, 0, 0};
  const std::vector<float> sigmoid = {0.5f, 0.5f, 0.25f, 0.25f};  // normalised: (1/3, 1/3, 1/6, 1/6)
  auto ref = ref_backend();
  Backend& be = *ref;
  {
    double out[2];
    be.moe_router_stats(out, uniform.data(), 2, E, false);
    EXPECT_NEAR(out[0], std::log(4.0), 1e-15);
    EXPECT_EQ(out[1], 0.25);
    be.moe_router_stats(out, one_hot.data(), 2, E, false);
    EXPECT_EQ(out[0], 0.0);
    EXPECT_EQ(out[1], 1.0);
    be.moe_router_stats(out, sigmoid.data(), 1, E, true);
    EXPECT_NEAR(out[0], -2 * (std::log(1 / 3.0) / 3 + std::log(1 / 6.0) / 6), 1e-15);
    EXPECT_NEAR(out[1], 1 / 3.0, 1e-15);
    be.moe_router_stats(out, sigmoid.data(), 0, E, true);
    EXPECT_EQ(out[0], 0.0);
  }
}

}  // namespace
}  // namespace upcycle::backend
