// Backend::moe_route and moe_route_backward on every registered backend against the ref backend, bit
// for bit (the decision and its gradient promise the ref's arithmetic everywhere), on awkward inputs:
// heavy ties, empty experts, capacity overflow, T = 1 and T = 0, biased and group-limited sigmoid
// selection, expert choice; bad specs (E not a multiple of n_group, non-finite scores) are refused by
// every backend (internal-error checks: model code builds every spec). The weight gradient (through renormalisation and scaling, with capacity drops) and the
// aux-loss gradient are checked against central differences of the ops' own forward outputs, with the
// routing held fixed. Hand-built decisions live in moe_routing_test.cpp and moe_sigmoid_routing_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/moe_routing.h"
#include "support/backend_test_support.h"
#include "support/finite_differences.h"
#include "support/moe_routing_test_support.h"

namespace upcycle::model {
namespace {

// Softmax rows of random logits, rounded to multiples of 1/64 before normalising when `ties` (so many
// scores repeat exactly), and with a spread that leaves some experts nearly unused.
std::vector<float> router_probs(int64_t T, int64_t E, uint64_t seed, bool ties) {
  std::vector<float> logits = test::random_floats(size_t(T * E), seed, 2.0f, "logits");
  for (int64_t t = 0; t < T; ++t) logits[size_t(t * E)] -= 3.0f;  // expert 0 rarely wins
  if (ties)
    for (float& l : logits) l = std::round(l * 2.0f) / 2.0f;
  std::vector<float> p(logits.size());
  backend::make_backend(backend::BackendKind::kRef)->softmax_rows(p.data(), logits.data(), T, E);
  return p;
}

MoeOptions token_choice(int64_t E, int64_t K, TopkNorm norm, double cf, double scaling = 1.0) {
  return MoeOptions{.num_experts = E, .top_k = K, .topk_norm = norm, .topk_scaling = scaling, .capacity_factor = cf};
}

struct Case {
  std::string name;
  int64_t T;
  MoeOptions options;
  bool ties = false, bias = false, sigmoid = false;
};

std::vector<Case> cases() {
  MoeOptions ec{.num_experts = 6, .mode = RoutingMode::kExpertChoice, .capacity_factor = 1.5};
  MoeOptions grouped = token_choice(8, 3, TopkNorm::kRenormalize, 0.0, 2.5);
  grouped.scoring = RouterScoring::kSigmoid, grouped.n_group = 4, grouped.topk_group = 2;
  return {{"dropless renormalised", 37, token_choice(8, 2, TopkNorm::kRenormalize, 0.0)},
          {"ties", 29, token_choice(5, 2, TopkNorm::kRenormalize, 0.0), true},
          {"capacity overflow", 41, token_choice(6, 2, TopkNorm::kRenormalize, 0.5), true},
          {"raw weights scaled, capacity", 23, token_choice(4, 1, TopkNorm::kNone, 0.75, 2.0)},
          {"one token", 1, token_choice(7, 3, TopkNorm::kRenormalize, 1.0)},
          {"no tokens", 0, token_choice(4, 2, TopkNorm::kRenormalize, 1.0)},
          {"selection bias", 19, token_choice(6, 2, TopkNorm::kRenormalize, 0.0), false, true},
          {"sigmoid groups + bias", 17, grouped, true, true, true},
          {"expert choice", 21, ec, true}};
}

TEST(MoeRouteOp, EveryBackendMatchesRefExactly) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const int64_t E = c.options.num_experts;
    std::vector<float> p = router_probs(c.T, E, 7, c.ties);
    if (c.sigmoid)  // sigmoid scores: independent values in (0, 1)
      for (float& v : p) v = std::min(0.99f, v * 2.0f);
    const std::vector<float> bias = test::random_floats(size_t(E), 9, 0.1f, "bias");
    const Routing r = test::route(p.data(), c.T, c.options, c.bias ? bias.data() : nullptr);  // asserts equality
    // The decision's invariants: offsets cover the kept assignments, each expert's tokens increase.
    ASSERT_EQ(r.offsets.size(), size_t(E + 1));
    EXPECT_EQ(r.offsets.back(), r.kept());
    for (int64_t e = 0; e < E; ++e)
      for (int64_t a = r.offsets[size_t(e)]; a < r.offsets[size_t(e + 1)]; ++a) {
        EXPECT_EQ(r.expert[size_t(a)], e);
        if (a > r.offsets[size_t(e)]) EXPECT_LT(r.token[size_t(a - 1)], r.token[size_t(a)]);
      }
    EXPECT_EQ(r.kept() + r.dropped, r.assignments);
  }
}

TEST(MoeRouteOp, CapacityOverflowDropsAndEmptyExpertsExist) {
  // The awkward cases above really are awkward: something is dropped, and some expert gets nobody.
  const std::vector<float> p = router_probs(41, 6, 7, true);
  const Routing r = test::route(p.data(), 41, token_choice(6, 2, TopkNorm::kRenormalize, 0.5));
  EXPECT_GT(r.dropped, 0);
  const std::vector<float> q = router_probs(12, 8, 3, false);
  const Routing s = test::route(q.data(), 12, token_choice(8, 1, TopkNorm::kRenormalize, 0.0));
  bool empty = false;
  for (int64_t e = 0; e < 8; ++e) empty |= s.offsets[size_t(e)] == s.offsets[size_t(e + 1)];
  EXPECT_TRUE(empty);
}

TEST(MoeRouteOp, BadSpecsAreRefusedByEveryBackend) {
  const std::vector<float> p = router_probs(4, 6, 1, false);
  MoeOptions uneven = token_choice(6, 2, TopkNorm::kRenormalize, 0.0);
  uneven.n_group = 4;  // 6 experts do not split into 4 groups
  std::vector<float> nan = p;
  nan[5] = NAN;
  for (const backend::BackendInfo& info : test::backend_infos()) {
    auto be = backend::make_backend(info.kind);
    EXPECT_THROW(route(*be, p.data(), 4, uneven), std::logic_error) << info.name;
    EXPECT_THROW(route(*be, nan.data(), 4, token_choice(6, 2, TopkNorm::kRenormalize, 0.0)), std::logic_error)
        << info.name;
  }
}

// Σ_a g_a·w_a(p) with the routing of p0 held fixed: the op's own weights, read at p0's kept assignments.
double weight_objective(backend::Backend& be, const std::vector<float>& p, int64_t T, const MoeOptions& o,
                        const Routing& fixed, const std::vector<float>& g) {
  const Routing r = route(be, p.data(), T, o);
  EXPECT_EQ(r.token, fixed.token);  // the step must not change the decision
  EXPECT_EQ(r.expert, fixed.expert);
  double sum = 0.0;
  for (size_t a = 0; a < r.weight.size(); ++a) sum += double(g[a]) * r.weight[a];
  return sum;
}

TEST(MoeRouteBackwardOp, MatchesFiniteDifferencesOfTheWeightsAndTheAuxLoss) {
  struct GradCase {
    std::string name;
    MoeOptions options;
  };
  MoeOptions ec{.num_experts = 5, .mode = RoutingMode::kExpertChoice, .capacity_factor = 1.0};
  const std::vector<GradCase> grad_cases = {
      {"renormalised, capacity drops, scaled", token_choice(5, 2, TopkNorm::kRenormalize, 0.6, 1.5)},
      {"raw weights scaled", token_choice(5, 2, TopkNorm::kNone, 0.0, 2.5)},
      {"expert choice", ec}};
  const int64_t T = 9, E = 5;
  for (const GradCase& c : grad_cases) {
    SCOPED_TRACE(c.name);
    std::vector<float> p = router_probs(T, E, 21, false);
    const double aux_coef = c.options.mode == RoutingMode::kTokenChoice ? 0.3 : 0.0;
    for (const backend::BackendInfo& info : test::backend_infos()) {
      SCOPED_TRACE(std::string(info.name));
      auto be = backend::make_backend(info.kind);
      const Routing r = route(*be, p.data(), T, c.options);
      const std::vector<float> g = test::random_floats(size_t(r.kept()), 22, 1.0f, "dweight");
      const std::vector<float> grad = test::route_backward(*be, r, g, c.options, aux_coef);
      auto ref = backend::make_backend(backend::BackendKind::kRef);
      EXPECT_EQ(grad, test::route_backward(*ref, r, g, c.options, aux_coef));  // bitwise the ref's
      auto objective = [&] {
        return weight_objective(*be, p, T, c.options, r, g) + aux_coef * aux_loss(*be, p.data(), T, E, r.counts_E);
      };
      EXPECT_TRUE(test::matches_finite_differences(p, grad, objective, 1.0f / 1024, 2e-3));
    }
  }
}

TEST(MoeRouteBackwardOp, AddsTheDirichletGradientTimesItsCoefficient) {
  const int64_t T = 6, E = 4;
  const std::vector<float> p = router_probs(T, E, 5, false);
  const MoeOptions o = token_choice(E, 2, TopkNorm::kRenormalize, 0.0);
  std::vector<double> ddir(size_t(T * E));
  for (size_t i = 0; i < ddir.size(); ++i) ddir[i] = 0.25 * double(i) - 1.0;
  for (const backend::BackendInfo& info : test::backend_infos()) {
    auto be = backend::make_backend(info.kind);
    const Routing r = route(*be, p.data(), T, o);
    const std::vector<float> g(size_t(r.kept()), 0.0f);  // no weight gradient: only the prior's term
    const std::vector<float> grad = test::route_backward(*be, r, g, o, 0.0, ddir, 0.5);
    for (size_t i = 0; i < ddir.size(); ++i) EXPECT_EQ(grad[i], float(0.5 * ddir[i])) << info.name << " " << i;
  }
}

}  // namespace
}  // namespace upcycle::model
