// The MoE loss and helper ops of backend.h ("MoE routing and losses") on every registered backend:
// each matches the ref backend bit for bit (their cpu kernels promise the ref's arithmetic), plus
//   - jitter: the noise is CounterRng(seed, "moe_jitter").uniform(i) mapped to [1−j, 1+j], the same
//     values for any n and seed-for-seed; its backward is the noise times the incoming gradient;
//   - logsumexp_rows against log(Σ exp) by hand (also at logits of 1000, where a naive sum overflows);
//     the z-loss gradient and the shared-expert gate's backward against central differences of the
//     ops' own forward outputs;
//   - the Dirichlet-prior op on float scores equals the double ref kernel on the same values, with one
//     prior, per-domain priors (two domains sharing one α) and T = 1;
//   - router statistics by hand: uniform rows (entropy ln E, top-1 1/E), one-hot rows (0, 1), and sigmoid
//     scores normalised per row.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/ref/ref_moe_routing.h"
#include "core/rng.h"
#include "support/backend_test_support.h"
#include "support/finite_differences.h"

namespace upcycle::backend {
namespace {

// Runs fn(backend, ref) for every registered backend, under a trace naming it.
template <typename Fn>
void each_backend_vs_ref(Fn fn) {
  auto ref = make_backend(BackendKind::kRef);
  for (const BackendInfo& info : test::backend_infos()) {
    auto be = make_backend(info.kind);
    SCOPED_TRACE(std::string("backend ") + std::string(info.name));
    fn(*be, *ref);
  }
}

TEST(MoeJitterOp, CounterNoiseInRangeAndBackward) {
  const int64_t n = 1000;
  const double j = 0.2;
  const std::vector<float> x = test::random_floats(size_t(n), 3);
  const CounterRng rng(77, "moe_jitter");
  each_backend_vs_ref([&](Backend& be, Backend& ref) {
    const auto size = static_cast<size_t>(n);
    std::vector<float> xn(size), noise(size), xn_ref(size), noise_ref(size);
    be.moe_jitter_forward(xn.data(), noise.data(), x.data(), n, 77, j);
    ref.moe_jitter_forward(xn_ref.data(), noise_ref.data(), x.data(), n, 77, j);
    EXPECT_EQ(noise, noise_ref);
    EXPECT_EQ(xn, xn_ref);
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
  });
}

TEST(LogsumexpRowsOp, HandValuesAndLargeLogits) {
  const std::vector<float> x = {0.0f, 0.0f, 0.0f,  1000.0f, 1000.0f, 999.0f,  -3.0f, 2.0f, 0.5f};
  each_backend_vs_ref([&](Backend& be, Backend& ref) {
    std::vector<double> lse(3), lse_ref(3);
    be.logsumexp_rows(lse.data(), x.data(), 3, 3);
    ref.logsumexp_rows(lse_ref.data(), x.data(), 3, 3);
    EXPECT_EQ(lse, lse_ref);
    EXPECT_NEAR(lse[0], std::log(3.0), 1e-15);
    EXPECT_NEAR(lse[1], 1000.0 + std::log(2.0 + std::exp(-1.0)), 1e-12);
    EXPECT_NEAR(lse[2], std::log(std::exp(-3.0) + std::exp(2.0) + std::exp(0.5)), 1e-14);
    double z = 0;
    be.moe_z_loss(&z, lse.data(), 3);
    EXPECT_NEAR(z, (lse[0] * lse[0] + lse[1] * lse[1] + lse[2] * lse[2]) / 3.0, 1e-9);
    be.moe_z_loss(&z, lse.data(), 0);
    EXPECT_EQ(z, 0.0);
  });
}

TEST(MoeZLossOp, GradientMatchesFiniteDifferences) {
  const int64_t T = 7, E = 5;
  const double coef = 0.7;
  std::vector<float> logits = test::random_floats(size_t(T * E), 11, 2.0f);
  each_backend_vs_ref([&](Backend& be, Backend& ref) {
    std::vector<float> p(logits.size());
    std::vector<double> lse(static_cast<size_t>(T));
    be.softmax_rows(p.data(), logits.data(), T, E);
    be.logsumexp_rows(lse.data(), logits.data(), T, E);
    std::vector<float> grad(logits.size(), 0.5f), grad_ref = grad;  // accumulates onto what is there
    be.moe_z_loss_backward(grad.data(), p.data(), lse.data(), T, E, coef);
    ref.moe_z_loss_backward(grad_ref.data(), p.data(), lse.data(), T, E, coef);
    EXPECT_EQ(grad, grad_ref);
    for (float& v : grad) v -= 0.5f;
    auto objective = [&] {
      std::vector<double> l(static_cast<size_t>(T));
      double z = 0;
      be.logsumexp_rows(l.data(), logits.data(), T, E);
      be.moe_z_loss(&z, l.data(), T);
      return coef * z;
    };
    EXPECT_TRUE(test::matches_finite_differences(logits, grad, objective, 1.0f / 1024, 1e-4));
  });
}

TEST(MoeAuxLossOp, HandValueAndEveryBackendEqual) {
  // p rows (0.5, 0.5, 0), (0.25, 0.25, 0.5); counts (1, 2, 1): E/A·Σ count·P = 3/4·(0.375 + 0.75 + 0.25).
  const std::vector<float> p = {0.5f, 0.5f, 0.0f, 0.25f, 0.25f, 0.5f};
  const std::vector<int64_t> counts = {1, 2, 1};
  each_backend_vs_ref([&](Backend& be, Backend&) {
    double loss = -1;
    be.moe_aux_loss(&loss, p.data(), counts.data(), 2, 3);
    EXPECT_EQ(loss, 0.75 * (0.375 + 0.75 + 0.25));
    be.moe_aux_loss(&loss, p.data(), counts.data(), 0, 3);
    EXPECT_EQ(loss, 0.0);
  });
  const std::vector<float> q = test::random_floats(64 * 6, 5);
  const std::vector<int64_t> c = {30, 0, 41, 7, 19, 31};
  each_backend_vs_ref([&](Backend& be, Backend& ref) {
    double a = 0, b = 0;
    be.moe_aux_loss(&a, q.data(), c.data(), 64, 6);
    ref.moe_aux_loss(&b, q.data(), c.data(), 64, 6);
    EXPECT_EQ(a, b);
  });
}

TEST(MoeSharedGateOp, ForwardByHandBackwardByFiniteDifferences) {
  const int64_t T = 4, D = 67;  // D crosses the cpu kernels' 64-column blocks
  std::vector<float> z = test::random_floats(size_t(T), 1, 2.0f), ys = test::random_floats(size_t(T * D), 2);
  const std::vector<float> r = test::random_floats(size_t(T * D), 3);
  each_backend_vs_ref([&](Backend& be, Backend& ref) {
    std::vector<float> sigma(static_cast<size_t>(T));
    be.sigmoid_forward(sigma.data(), z.data(), T);
    std::vector<float> y(size_t(T * D), 1.0f);
    be.moe_shared_gate_forward(y.data(), ys.data(), sigma.data(), T, D);
    for (int64_t i = 0; i < T * D; ++i) EXPECT_EQ(y[size_t(i)], 1.0f + sigma[size_t(i / D)] * ys[size_t(i)]);
    std::vector<float> dys(size_t(T * D), 0.0f), dz(size_t(T), 0.0f), dys_ref = dys, dz_ref = dz;
    be.moe_shared_gate_backward(dys.data(), dz.data(), r.data(), ys.data(), sigma.data(), T, D);
    ref.moe_shared_gate_backward(dys_ref.data(), dz_ref.data(), r.data(), ys.data(), sigma.data(), T, D);
    EXPECT_EQ(dys, dys_ref);
    EXPECT_EQ(dz, dz_ref);
    auto objective = [&] {  // Σ r ⊙ y(z, ys)
      std::vector<float> s(static_cast<size_t>(T)), out(size_t(T * D), 0.0f);
      be.sigmoid_forward(s.data(), z.data(), T);
      be.moe_shared_gate_forward(out.data(), ys.data(), s.data(), T, D);
      return test::weighted_sum(r, out.data());
    };
    EXPECT_TRUE(test::matches_finite_differences(z, dz, objective, 1.0f / 1024, 1e-3));
    EXPECT_TRUE(test::matches_finite_differences(ys, dys, objective, 1.0f / 64, 1e-4));
  });
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
  each_backend_vs_ref([&](Backend& be, Backend& ref) {
    for (int64_t tokens : {T, int64_t{1}}) {
      SCOPED_TRACE(tokens);
      // One prior for every token.
      double loss = 0, loss_ref = 0;
      std::vector<double> grad(size_t(tokens * E)), grad_ref(grad.size()), want(grad.size());
      be.dirichlet_prior_loss(&loss, grad.data(), p.data(), tokens, E, nullptr, nullptr, 0, alpha_PE.data(), 1);
      ref.dirichlet_prior_loss(&loss_ref, grad_ref.data(), p.data(), tokens, E, nullptr, nullptr, 0, alpha_PE.data(), 1);
      EXPECT_EQ(loss, loss_ref);
      EXPECT_EQ(grad, grad_ref);
      EXPECT_EQ(loss, ref::dirichlet_prior_loss(pd.data(), tokens, E, alpha_PE.data(), want.data()));
      EXPECT_EQ(grad, want);
      // Per-domain priors.
      be.dirichlet_prior_loss(&loss, grad.data(), p.data(), tokens, E, domain_T.data(), prior_of_domain.data(), 3,
                              alpha_PE.data(), 2);
      ref.dirichlet_prior_loss(&loss_ref, grad_ref.data(), p.data(), tokens, E, domain_T.data(), prior_of_domain.data(),
                               3, alpha_PE.data(), 2);
      EXPECT_EQ(loss, loss_ref);
      EXPECT_EQ(grad, grad_ref);
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
  });
}

TEST(MoeRouterStatsOp, HandValues) {
  const int64_t E = 4;
  const std::vector<float> uniform(2 * E, 0.25f), one_hot = {0, 1, 0, 0, 1, 0, 0, 0};
  const std::vector<float> sigmoid = {0.5f, 0.5f, 0.25f, 0.25f};  // normalised: (1/3, 1/3, 1/6, 1/6)
  each_backend_vs_ref([&](Backend& be, Backend& ref) {
    double out[2], want[2];
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
    const std::vector<float> p = test::random_floats(50 * 6, 4);  // any values: compare with ref bitwise
    std::vector<float> q(p.size());
    ref.softmax_rows(q.data(), p.data(), 50, 6);
    be.moe_router_stats(out, q.data(), 50, 6, false);
    ref.moe_router_stats(want, q.data(), 50, 6, false);
    EXPECT_EQ(out[0], want[0]);
    EXPECT_EQ(out[1], want[1]);
  });
}

}  // namespace
}  // namespace upcycle::backend
