// Backend::moe_route and moe_route_backward beyond the op-case table (op_cases_moe_routing.cpp, where
// every backend is compared with ref and the backward with finite differences): the ref decision's
// invariants on awkward inputs (offsets cover the kept assignments, each expert's tokens increase,
// kept + dropped = assignments), proof that those inputs are awkward (something dropped, an expert
// empty), the refusals — a spec that does not split E into groups is an internal error, a non-finite
// score or bias NonFiniteRouterScores (the data's fault: the model names the layer for the user) — on
// every backend, and the Dirichlet term of the backward by hand. Hand-built decisions live in
// moe_routing_test.cpp and moe_sigmoid_routing_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/moe_routing.h"
#include "support/backend_test_support.h"
#include "support/moe_routing_test_support.h"

namespace upcycle::model {
namespace {

using test::router_probs;
using test::Routing;

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

TEST(MoeRouteOp, RefDecisionInvariants) {
  auto ref = backend::make_backend(backend::BackendKind::kRef);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const int64_t E = c.options.num_experts;
    const std::vector<float> p = router_probs(c.T, E, 7, c.ties, c.sigmoid);
    const std::vector<float> bias = test::random_floats(size_t(E), 9, 0.1f, "bias");
    const Routing r = test::route(*ref, p.data(), c.T, c.options, c.bias ? bias.data() : nullptr);
    ASSERT_EQ(r.offsets.size(), size_t(E + 1));
    EXPECT_EQ(r.offsets.back(), r.kept());
    for (int64_t e = 0; e < E; ++e)
      for (int64_t a = r.offsets[size_t(e)]; a < r.offsets[size_t(e + 1)]; ++a) {
        EXPECT_EQ(r.expert[size_t(a)], e);
        if (a > r.offsets[size_t(e)]) {
          EXPECT_LT(r.token[size_t(a - 1)], r.token[size_t(a)]);
        }
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
    EXPECT_THROW(test::route(*be, p.data(), 4, uneven), std::logic_error) << info.name;
    EXPECT_THROW(test::route(*be, nan.data(), 4, token_choice(6, 2, TopkNorm::kRenormalize, 0.0)),
                 backend::NonFiniteRouterScores)
        << info.name;
    const std::vector<float> bias = {0, 0, INFINITY, 0, 0, 0};
    EXPECT_THROW(test::route(*be, p.data(), 4, token_choice(6, 2, TopkNorm::kRenormalize, 0.0), bias.data()),
                 backend::NonFiniteRouterScores)
        << info.name;
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
    const Routing r = test::route(*be, p.data(), T, o);
    const std::vector<float> g(size_t(r.kept()), 0.0f);  // no weight gradient: only the prior's term
    const std::vector<float> grad = test::route_backward(*be, r, g, o, 0.0, ddir, 0.5);
    for (size_t i = 0; i < ddir.size(); ++i) EXPECT_EQ(grad[i], float(0.5 * ddir[i])) << info.name << " " << i;
  }
}

}  // namespace
}  // namespace upcycle::model
