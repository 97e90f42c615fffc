// MoE layer forward behaviour: function preservation (E copies of one dense SwiGLU FFN reproduce it
// under renormalised top-k, and scale it by Σ top-k p without renormalisation), the shared expert
// (sigmoid-gated and ungated) added on top, routing statistics and
// losses on a hand-built probability table, a token dropped by capacity getting exactly nothing, the
// ref and cpu backends agreeing on outputs, gradients and stats, and determinism (same seed → bitwise
// same outputs and gradients with jitter; inference ignores jitter).
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend.h"
#include "model/moe_layer.h"
#include "support/backend_test_support.h"
#include "support/moe_test_support.h"

namespace upcycle::model {
namespace {

using backend::BackendKind;
using test::all_close;
using test::MoeBuffers;
using test::random_floats;

class MoeLayerBackends : public ::testing::TestWithParam<BackendKind> {
 protected:
  std::unique_ptr<backend::Backend> be_ = backend::make_backend(GetParam());
};

TEST_P(MoeLayerBackends, CopiedExpertsPreserveTheDenseFfn) {
  const int64_t T = 7, D = 6, F = 5, E = 4;
  const auto gate = random_floats(size_t(F * D), 1), up = random_floats(size_t(F * D), 2);
  const auto down = random_floats(size_t(D * F), 3), x = random_floats(size_t(T * D), 4);
  MoeBuffers w(E, D, F, 0, false);
  w.router = random_floats(w.router.size(), 5);
  for (int64_t e = 0; e < E; ++e) {
    std::copy(gate.begin(), gate.end(), w.gate.begin() + e * F * D);
    std::copy(up.begin(), up.end(), w.up.begin() + e * F * D);
    std::copy(down.begin(), down.end(), w.down.begin() + e * D * F);
  }
  // The dense FFN with backend ops: down(silu(gate x) ⊙ up x).
  std::vector<float> g(size_t(T * F)), u(g.size()), h(g.size()), dense(size_t(T * D));
  be_->linear_forward(g.data(), x.data(), gate.data(), nullptr, T, D, F);
  be_->linear_forward(u.data(), x.data(), up.data(), nullptr, T, D, F);
  be_->swiglu_forward(h.data(), g.data(), u.data(), T * F);
  be_->linear_forward(dense.data(), h.data(), down.data(), nullptr, T, F, D);
  const auto p = test::router_probs(x, w.router, T, D, E);

  for (int64_t K : {1, 2, 4}) {
    for (TopkNorm norm : {TopkNorm::kRenormalize, TopkNorm::kNone}) {
      SCOPED_TRACE("K=" + std::to_string(K) + " renormalise=" + std::to_string(norm == TopkNorm::kRenormalize));
      MoeLayer layer(*be_, MoeOptions{.num_experts = E, .top_k = K, .topk_norm = norm},
                     MoeDims{.hidden = D, .expert_width = F});
      std::vector<float> y(size_t(T * D), 123.0f);
      layer.forward(y.data(), x.data(), T, w.weights(), Phase::kInference, 0);
      std::vector<float> want = dense;
      if (norm == TopkNorm::kNone) {
        for (int64_t t = 0; t < T; ++t) {
          std::vector<double> row(p.begin() + t * E, p.begin() + (t + 1) * E);
          std::sort(row.begin(), row.end(), std::greater<>());
          double topk_mass = 0.0;
          for (int64_t k = 0; k < K; ++k) topk_mass += row[size_t(k)];
          for (int64_t d = 0; d < D; ++d) want[size_t(t * D + d)] = float(topk_mass * dense[size_t(t * D + d)]);
        }
      }
      EXPECT_TRUE(all_close(y, want, 1e-5));
    }
  }
}

// W_r = I and x_t = log p_t + t make the router's probabilities the table p (softmax ignores the
// per-row shift) and its logsumexp exactly t, so stats and losses have hand values.
TEST_P(MoeLayerBackends, StatsAndLossesOnAHandTable) {
  const int64_t T = 4, E = 3, D = 3, F = 2;
  const double p[T][E] = {{0.5, 0.25, 0.25}, {0.7, 0.2, 0.1}, {0.6, 0.3, 0.1}, {0.1, 0.1, 0.8}};
  std::vector<float> x(size_t(T * D));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t e = 0; e < E; ++e) x[size_t(t * D + e)] = float(std::log(p[t][e]) + double(t));
  }
  MoeBuffers w(E, D, F, 0, false);
  w.randomize(9, 1.0f);
  w.router = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  // K=1, cf=1 → C = ceil(4/3) = 2: expert 0 is top-1 for t0, t1, t2 and drops t0 (0.5, the lowest).
  MoeLayer layer(*be_, MoeOptions{.num_experts = E, .top_k = 1, .capacity_factor = 1.0},
                 MoeDims{.hidden = D, .expert_width = F});
  std::vector<float> y(size_t(T * D), 5.0f);
  layer.forward(y.data(), x.data(), T, w.weights(), Phase::kInference, 0);
  const MoeStats& st = layer.stats();
  EXPECT_EQ(st.tokens_per_expert, (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(st.assignments, 4);
  EXPECT_EQ(st.dropped, 1);
  const double entropy = (1.5 * std::log(2.0) - (0.7 * std::log(0.7) + 0.2 * std::log(0.2) + 0.1 * std::log(0.1)) -
                          (0.6 * std::log(0.6) + 0.3 * std::log(0.3) + 0.1 * std::log(0.1)) -
                          (0.2 * std::log(0.1) + 0.8 * std::log(0.8))) / 4.0;
  EXPECT_NEAR(st.router_entropy, entropy, 1e-6);
  EXPECT_NEAR(st.top1_probability, (0.5 + 0.7 + 0.6 + 0.8) / 4.0, 1e-6);
  // counts before dropping (3, 0, 1), P = (1.9, 0.85, 1.25)/4: L_aux = 3/(1·4)·(3·1.9 + 1.25)/4 = 1.303125.
  EXPECT_NEAR(st.aux_loss, 1.303125, 1e-6);
  EXPECT_NEAR(st.z_loss, (0.0 + 1.0 + 4.0 + 9.0) / 4.0, 1e-5);
  // The dropped token has no other expert and no shared expert: its output is exactly zero.
  for (int64_t d = 0; d < D; ++d) EXPECT_EQ(y[size_t(d)], 0.0f);
  for (int64_t t = 1; t < T; ++t) EXPECT_NE(y[size_t(t * D)], 0.0f);
}

// Qwen2-MoE's shared expert: y = routed(x) + sigmoid(x·w_gᵀ)·FFN_s(x), or + FFN_s(x) when ungated.
TEST_P(MoeLayerBackends, SharedExpertAddsGatedDenseFfn) {
  const int64_t T = 5, D = 6, F = 4, Fs = 3, E = 3;
  const auto x = random_floats(size_t(T * D), 30);
  MoeBuffers with_shared(E, D, F, Fs, true);
  with_shared.randomize(31, 1.0f);
  MoeBuffers routed_only = with_shared;
  routed_only.Fs = 0;
  const MoeOptions o{.num_experts = E, .top_k = 2};
  std::vector<float> routed(size_t(T * D)), gated(routed.size()), ungated(routed.size());
  MoeLayer(*be_, o, MoeDims{.hidden = D, .expert_width = F})
      .forward(routed.data(), x.data(), T, routed_only.weights(), Phase::kInference, 0);
  MoeLayer shared_layer(*be_, o, MoeDims{.hidden = D, .expert_width = F, .shared_width = Fs});
  shared_layer.forward(gated.data(), x.data(), T, with_shared.weights(), Phase::kInference, 0);
  MoeWeights no_gate = with_shared.weights();
  no_gate.shared_expert_gate_1D = nullptr;
  shared_layer.forward(ungated.data(), x.data(), T, no_gate, Phase::kInference, 0);

  std::vector<float> g(size_t(T * Fs)), u(g.size()), h(g.size()), ffn(routed.size());
  be_->linear_forward(g.data(), x.data(), with_shared.s_gate.data(), nullptr, T, D, Fs);
  be_->linear_forward(u.data(), x.data(), with_shared.s_up.data(), nullptr, T, D, Fs);
  be_->swiglu_forward(h.data(), g.data(), u.data(), T * Fs);
  be_->linear_forward(ffn.data(), h.data(), with_shared.s_down.data(), nullptr, T, Fs, D);
  std::vector<float> want_gated(routed.size()), want_ungated(routed.size());
  for (int64_t t = 0; t < T; ++t) {
    double z = 0.0;
    for (int64_t d = 0; d < D; ++d) z += double(x[size_t(t * D + d)]) * with_shared.s_expert_gate[size_t(d)];
    const double sigma = 1.0 / (1.0 + std::exp(-z));
    for (int64_t d = 0; d < D; ++d) {
      const size_t i = size_t(t * D + d);
      want_gated[i] = float(routed[i] + sigma * ffn[i]);
      want_ungated[i] = routed[i] + ffn[i];
    }
  }
  EXPECT_TRUE(all_close(gated, want_gated, 1e-5));
  EXPECT_TRUE(all_close(ungated, want_ungated, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(Backends, MoeLayerBackends, ::testing::ValuesIn(test::fp32_backend_kinds()),
                         test::BackendTestName());

struct RunResult {
  std::vector<float> y, dx;
  MoeBuffers grads;
  MoeStats stats;
};

RunResult run_layer(backend::Backend& be, const MoeOptions& o, const MoeBuffers& w, const std::vector<float>& x,
                    int64_t T, Phase phase, uint64_t seed) {
  RunResult res{std::vector<float>(x.size()), std::vector<float>(x.size(), 0.0f),
                MoeBuffers(w.E, w.D, w.F, w.Fs, w.shared_gated), {}};
  MoeLayer layer(be, o, MoeDims{.hidden = w.D, .expert_width = w.F, .shared_width = w.Fs});
  layer.forward(res.y.data(), x.data(), T, w.weights(), phase, seed);
  const auto dy = random_floats(x.size(), 99, 1.0f, "dy");
  MoeGrads g = res.grads.grads();
  layer.backward(res.dx.data(), g, dy.data(), x.data(), w.weights());
  res.stats = layer.stats();
  return res;
}

std::vector<MoeOptions> comparison_options(int64_t E) {
  return {{.num_experts = E, .top_k = 2, .topk_norm = TopkNorm::kRenormalize, .capacity_factor = 1.0,
           .jitter = 0.1, .aux_loss_coef = 0.01, .z_loss_coef = 0.001},
          {.num_experts = E, .top_k = 3, .topk_norm = TopkNorm::kNone, .topk_scaling = 2.0, .aux_loss_coef = 0.01},
          {.num_experts = E, .mode = RoutingMode::kExpertChoice, .capacity_factor = 1.5, .z_loss_coef = 0.01}};
}

TEST(MoeLayerVsRef, OutputsGradientsAndStatsAgree) {
  const int64_t T = 33, D = 16, E = 8, F = 24, Fs = 12;
  auto ref = backend::make_backend(BackendKind::kRef), cpu = backend::make_backend(BackendKind::kCpu);
  MoeBuffers w(E, D, F, Fs, true);
  w.randomize(3, 1.0f);
  const auto x = random_floats(size_t(T * D), 4);
  for (const MoeOptions& o : comparison_options(E)) {
    SCOPED_TRACE("mode=" + std::to_string(int(o.mode)) + " K=" + std::to_string(o.top_k));
    const RunResult a = run_layer(*ref, o, w, x, T, Phase::kTraining, 11);
    const RunResult b = run_layer(*cpu, o, w, x, T, Phase::kTraining, 11);
    EXPECT_EQ(a.stats.tokens_per_expert, b.stats.tokens_per_expert);
    EXPECT_EQ(a.stats.dropped, b.stats.dropped);
    EXPECT_NEAR(a.stats.aux_loss, b.stats.aux_loss, 1e-6);
    EXPECT_NEAR(a.stats.z_loss, b.stats.z_loss, 1e-5);
    EXPECT_NEAR(a.stats.router_entropy, b.stats.router_entropy, 1e-6);
    constexpr double kRtol = 1e-5;
    EXPECT_TRUE(all_close(b.y, a.y, kRtol));
    EXPECT_TRUE(all_close(b.dx, a.dx, kRtol));
    EXPECT_TRUE(all_close(b.grads.router, a.grads.router, kRtol));
    EXPECT_TRUE(all_close(b.grads.gate, a.grads.gate, kRtol));
    EXPECT_TRUE(all_close(b.grads.up, a.grads.up, kRtol));
    EXPECT_TRUE(all_close(b.grads.down, a.grads.down, kRtol));
    EXPECT_TRUE(all_close(b.grads.s_gate, a.grads.s_gate, kRtol));
    EXPECT_TRUE(all_close(b.grads.s_down, a.grads.s_down, kRtol));
    EXPECT_TRUE(all_close(b.grads.s_expert_gate, a.grads.s_expert_gate, kRtol));
  }
}

TEST(MoeLayerDeterminism, SameSeedSameBitsAndInferenceIgnoresJitter) {
  const int64_t T = 33, D = 16, E = 8, F = 24, Fs = 12;
  auto cpu = backend::make_backend(BackendKind::kCpu);
  MoeBuffers w(E, D, F, Fs, true);
  w.randomize(5, 1.0f);
  const auto x = random_floats(size_t(T * D), 6);
  const MoeOptions o = comparison_options(E)[0];  // jitter 0.1, capacity, both losses
  const RunResult a = run_layer(*cpu, o, w, x, T, Phase::kTraining, 42);
  const RunResult b = run_layer(*cpu, o, w, x, T, Phase::kTraining, 42);
  EXPECT_EQ(a.y, b.y);
  EXPECT_EQ(a.dx, b.dx);
  EXPECT_EQ(a.grads.router, b.grads.router);
  EXPECT_EQ(a.grads.gate, b.grads.gate);
  EXPECT_EQ(a.grads.down, b.grads.down);
  EXPECT_EQ(a.grads.s_expert_gate, b.grads.s_expert_gate);
  // Another seed draws other noise: the routing weights, hence the output, move.
  const RunResult c = run_layer(*cpu, o, w, x, T, Phase::kTraining, 43);
  EXPECT_NE(a.y, c.y);
  // Inference is the jitter-free layer, bit for bit, whatever the seed.
  MoeOptions no_jitter = o;
  no_jitter.jitter = 0.0;
  const RunResult inf = run_layer(*cpu, o, w, x, T, Phase::kInference, 42);
  const RunResult plain = run_layer(*cpu, no_jitter, w, x, T, Phase::kTraining, 7);
  EXPECT_EQ(inf.y, plain.y);
  EXPECT_EQ(inf.dx, plain.dx);
  EXPECT_EQ(inf.grads.router, plain.grads.router);
}

}  // namespace
}  // namespace upcycle::model
