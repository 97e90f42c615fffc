// Whole-layer gradients of the MoE block against central finite differences of
//   L = Σ r⊙y + aux_loss_coef·L_aux + z_loss_coef·L_z + dirichlet_coef·L_dir
// for every weight (router, each expert's gate/up/down, the shared expert and its gate) and for x, on
// both backends, for token choice (renormalised with jitter, raw with scaling and capacity,
// renormalised with scaling and capacity, renormalised with an asymmetric Dirichlet prior and with
// per-domain priors over two domains) and expert choice. Inputs are chosen (first seed that qualifies) so every routing decision (and, with the
// Dirichlet prior, the order of each expert's probabilities over the tokens, margin ≥ 0.007) has a
// probability margin ≥ 0.02, far above what a 1e-3 step can move (≈ 3e-3), and the objective also
// asserts the routing stayed put. The loss coefficients are large enough that the
// aux and z terms are visible at the 2e-3 tolerance: flipping the sign of any backward term fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "backend/backend.h"
#include "core/rng.h"
#include "model/moe_layer.h"
#include "support/backend_test_support.h"
#include "support/finite_differences.h"
#include "support/moe_test_support.h"

namespace upcycle::model {
namespace {

using test::MoeBuffers;
using test::random_floats;

constexpr int64_t T = 7, D = 6, E = 4, F = 5, Fs = 3;
constexpr float kStep = 1e-3f;
constexpr double kTol = 2e-3;
constexpr double kMinMargin = 0.02;
constexpr double kMinRankMargin = 0.007;  // > 2 × the ≈ 3e-3 a step moves p: 84 pairs of 7 tokens × 4 experts

struct GradCase {
  const char* name;
  MoeOptions options;
  bool shared, gated;
};

std::vector<GradCase> grad_cases() {
  return {
      {"top2_renorm_jitter_gated_shared",
       {.num_experts = E, .top_k = 2, .topk_norm = TopkNorm::kRenormalize, .jitter = 0.3, .aux_loss_coef = 0.5,
        .z_loss_coef = 0.2},
       true, true},
      {"top2_raw_scaled_capacity_ungated_shared",
       {.num_experts = E, .top_k = 2, .topk_norm = TopkNorm::kNone, .topk_scaling = 1.7, .capacity_factor = 0.75,
        .aux_loss_coef = 0.5, .z_loss_coef = 0.2},
       true, false},
      {"top2_renorm_scaled_capacity",
       {.num_experts = E, .top_k = 2, .topk_norm = TopkNorm::kRenormalize, .topk_scaling = 1.3, .capacity_factor = 0.75,
        .aux_loss_coef = 0.5, .z_loss_coef = 0.2},
       false, false},
      {"top2_renorm_dirichlet_asymmetric",
       {.num_experts = E, .top_k = 2, .topk_norm = TopkNorm::kRenormalize, .aux_loss_coef = 0.5, .z_loss_coef = 0.2,
        .dirichlet_alpha_E = {0.5, 0.8, 1.5, 2.0}, .dirichlet_coef = 2.0},
       false, false},
      {"top2_renorm_dirichlet_per_domain",
       {.num_experts = E, .top_k = 2, .topk_norm = TopkNorm::kRenormalize, .aux_loss_coef = 0.5, .z_loss_coef = 0.2,
        .dirichlet_domain_alpha_DE = {{2.0, 2.0, 0.5, 0.5}, {0.5, 0.8, 1.5, 2.0}}, .dirichlet_coef = 2.0},
       false, false},
      {"expert_choice_gated_shared",
       {.num_experts = E, .mode = RoutingMode::kExpertChoice, .capacity_factor = 1.0, .aux_loss_coef = 0.5,
        .z_loss_coef = 0.2},
       true, true},
  };
}

// The jitter noise as moe_layer.h specifies it: U(1−j, 1+j) from CounterRng(seed, "moe_jitter").
std::vector<float> jitter_noise(uint64_t seed, double j) {
  std::vector<float> n(size_t(T * D));
  const CounterRng rng(seed, "moe_jitter");
  for (size_t i = 0; i < n.size(); ++i) n[i] = float(1.0 - j + 2.0 * j * rng.uniform(i));
  return n;
}

// Smallest gap between two tokens' probabilities for the same expert: the Dirichlet-prior loss ranks
// each expert's probabilities over the batch, and its gradient jumps where two ranks swap.
double rank_margin(const std::vector<double>& p, int64_t T, int64_t E) {
  double margin = INFINITY;
  for (int64_t e = 0; e < E; ++e)
    for (int64_t s = 0; s < T; ++s)
      for (int64_t t = s + 1; t < T; ++t) margin = std::min(margin, std::fabs(p[size_t(s * E + e)] - p[size_t(t * E + e)]));
  return margin;
}

class MoeLayerGrad : public ::testing::TestWithParam<backend::BackendKind> {
 protected:
  std::unique_ptr<backend::Backend> be_ = backend::make_backend(GetParam());
};

TEST_P(MoeLayerGrad, MatchesFiniteDifferences) {
  for (const GradCase& c : grad_cases()) {
    SCOPED_TRACE(c.name);
    const MoeOptions& o = c.options;
    const Phase phase = o.jitter > 0 ? Phase::kTraining : Phase::kInference;
    const uint64_t jitter_seed = 77;
    const auto noise = o.jitter > 0 ? jitter_noise(jitter_seed, o.jitter) : std::vector<float>{};
    const std::vector<int32_t> domain_T = {0, 1, 1, 0, 1, 0, 0};  // read by per-domain priors only
    const int32_t* domains = o.dirichlet_domain_alpha_DE.empty() ? nullptr : domain_T.data();
    MoeBuffers w(E, D, F, c.shared ? Fs : 0, c.gated);
    MoeLayer layer(*be_, o, MoeDims{.hidden = D, .expert_width = F, .shared_width = c.shared ? Fs : 0});
    std::vector<float> x, y(size_t(T * D));
    // First seed whose routing is well separated (and, with capacity, actually drops something).
    uint64_t seed = 0;
    for (uint64_t s = 1; s < 5000 && seed == 0; ++s) {
      w.randomize(s, 2.0f);
      x = random_floats(size_t(T * D), s, 1.0f, "x");
      const auto p = test::router_probs(x, w.router, T, D, E, noise);
      if (test::routing_margin(p, T, E, o) < kMinMargin) continue;
      layer.forward(y.data(), x.data(), T, w.weights(), phase, jitter_seed, domains);
      if (o.mode == RoutingMode::kTokenChoice && o.capacity_factor > 0 && layer.stats().dropped == 0) continue;
      if (o.has_dirichlet_prior() && rank_margin(p, T, E) < kMinRankMargin) continue;
      seed = s;
    }
    ASSERT_NE(seed, 0u) << "no seed with well-separated routing";
    const auto r = random_floats(size_t(T * D), seed, 1.0f, "r");

    layer.forward(y.data(), x.data(), T, w.weights(), phase, jitter_seed, domains);
    const MoeStats routed = layer.stats();
    MoeBuffers g(E, D, F, c.shared ? Fs : 0, c.gated);
    std::vector<float> dx(x.size(), 0.0f);
    MoeGrads grads = g.grads();
    layer.backward(dx.data(), grads, r.data(), x.data(), w.weights());

    bool routing_changed = false;
    auto objective = [&] {
      layer.forward(y.data(), x.data(), T, w.weights(), phase, jitter_seed, domains);
      const MoeStats& st = layer.stats();
      routing_changed |= st.tokens_per_expert != routed.tokens_per_expert || st.dropped != routed.dropped;
      return test::weighted_sum(r, y.data()) + o.aux_loss_coef * st.aux_loss + o.z_loss_coef * st.z_loss +
             o.dirichlet_coef * st.dirichlet_loss;
    };
    auto check = [&](const char* what, std::vector<float>& param, const std::vector<float>& grad) {
      EXPECT_TRUE(test::matches_finite_differences(param, grad, objective, kStep, kTol)) << what;
    };
    check("router", w.router, g.router);
    check("gate", w.gate, g.gate);
    check("up", w.up, g.up);
    check("down", w.down, g.down);
    if (c.shared) {
      check("shared gate", w.s_gate, g.s_gate);
      check("shared up", w.s_up, g.s_up);
      check("shared down", w.s_down, g.s_down);
      if (c.gated) check("shared expert gate", w.s_expert_gate, g.s_expert_gate);
    }
    check("x", x, dx);
    EXPECT_FALSE(routing_changed) << "a finite-difference step changed the routing";
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, MoeLayerGrad,
                         ::testing::ValuesIn(test::fp32_backend_kinds()),
                         test::BackendTestName());

}  // namespace
}  // namespace upcycle::model
