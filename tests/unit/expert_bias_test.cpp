// Aux-loss-free balancing: the selection bias flips top-k choices while combine weights stay p of the
// chosen experts (routing table and whole-layer output against a hand computation), aux-loss counts
// follow the selection, expert choice ignores the bias; the bias update's signs, the balanced case;
// and in the whole model, gradients with a non-zero bias match finite differences, decoding with it
// matches the forward, and misuse (dense layer, wrong size) is caught.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "model/moe_layer.h"
#include "model/moe_routing.h"
#include "support/moe_routing_test_support.h"
#include "model/transformer.h"
#include "support/backend_test_support.h"
#include "support/model_test_support.h"
#include "support/moe_test_support.h"
#include "train/expert_bias.h"

namespace upcycle::model {
namespace {

using test::aux_loss;  // on every registered backend (support/moe_routing_test_support.h)
using test::route;
using test::Routing;

using backend::BackendKind;

MoeOptions token_choice(int64_t E, int64_t K, TopkNorm norm) {
  return MoeOptions{.num_experts = E, .top_k = K, .topk_norm = norm};
}

TEST(ExpertBiasRouting, BiasPicksWeightsStayP) {
  const std::vector<float> p = {0.5f, 0.3f, 0.2f};
  const Routing plain = route(p.data(), 1, token_choice(3, 1, TopkNorm::kNone));
  EXPECT_EQ(plain.topk_TK, (std::vector<int32_t>{0}));
  const std::vector<float> bias = {0.0f, 0.25f, 0.0f};  // 0.3 + 0.25 = 0.55 > 0.5: expert 1 wins
  const Routing r = route(p.data(), 1, token_choice(3, 1, TopkNorm::kNone), bias.data());
  EXPECT_EQ(r.topk_TK, (std::vector<int32_t>{1}));
  EXPECT_EQ(r.expert, (std::vector<int32_t>{1}));
  EXPECT_EQ(r.weight, (std::vector<float>{0.3f}));  // p, not p + b
  EXPECT_EQ(r.probability, (std::vector<float>{0.3f}));
  EXPECT_EQ(r.counts_E, (std::vector<int64_t>{0, 1, 0}));
  EXPECT_DOUBLE_EQ(r.topk_sum_T[0], double(0.3f));

  // Top-2 renormalised: scores 0.5, 0.3, 0.6 pick {2, 0}; weights p/(0.5 + 0.2).
  const std::vector<float> bias2 = {0.0f, 0.0f, 0.4f};
  const Routing r2 = route(p.data(), 1, token_choice(3, 2, TopkNorm::kRenormalize), bias2.data());
  EXPECT_EQ(r2.topk_TK, (std::vector<int32_t>{2, 0}));
  EXPECT_EQ(r2.expert, (std::vector<int32_t>{0, 2}));
  EXPECT_NEAR(r2.weight[0], 0.5 / 0.7, 1e-7);
  EXPECT_NEAR(r2.weight[1], 0.2 / 0.7, 1e-7);
  EXPECT_EQ(r2.counts_E, (std::vector<int64_t>{1, 0, 1}));
  // The aux loss counts what was selected: E/A·Σ count·P = 3/2·(0.5 + 0.2) = 1.05.
  EXPECT_NEAR(aux_loss(p.data(), 1, 3, r2.counts_E), 1.05, 1e-7);

  // Expert choice ignores the bias entirely.
  const std::vector<float> q = {0.5f, 0.3f, 0.2f, 0.1f, 0.1f, 0.8f};
  const MoeOptions ec{.num_experts = 3, .mode = RoutingMode::kExpertChoice, .capacity_factor = 1.0};
  const Routing a = route(q.data(), 2, ec), b = route(q.data(), 2, ec, bias2.data());
  EXPECT_EQ(a.token, b.token);
  EXPECT_EQ(a.expert, b.expert);
  EXPECT_EQ(a.weight, b.weight);
}

// The hand table of moe_layer_test: W_r = I and x_t = log p_t make the router's probabilities p.
TEST(ExpertBiasLayer, FlipsSelectionKeepsCombineWeightsAndCounts) {
  const int64_t T = 4, E = 3, D = 3, F = 2;
  const double p[T][E] = {{0.5, 0.25, 0.25}, {0.7, 0.2, 0.1}, {0.6, 0.3, 0.1}, {0.1, 0.1, 0.8}};
  std::vector<float> x(size_t(T * D));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t e = 0; e < E; ++e) x[size_t(t * D + e)] = float(std::log(p[t][e]));
  test::MoeBuffers w(E, D, F, 0, false);
  w.randomize(9, 1.0f);
  w.router.assign(size_t(E * D), 0.0f);
  for (int64_t e = 0; e < E; ++e) w.router[size_t(e * D + e)] = 1.0f;
  // Bias 0.35 on expert 1: scores t0 .5/.6/.25 → 1, t1 .7/.55/.1 → 0, t2 .6/.65/.1 → 1, t3 → 2.
  const std::vector<float> bias = {0.0f, 0.35f, 0.0f};
  const int expected[T] = {1, 0, 1, 2};
  for (BackendKind kind : test::backend_kinds()) {
    auto be = backend::make_backend(kind);
    MoeLayer layer(*be, token_choice(E, 1, TopkNorm::kNone), MoeDims{.hidden = D, .expert_width = F});
    MoeWeights weights = w.weights();
    weights.selection_bias_E = bias.data();
    std::vector<float> y(size_t(T * D));
    layer.forward(y.data(), x.data(), T, weights, Phase::kInference, 0);
    EXPECT_EQ(layer.stats().tokens_per_expert, (std::vector<int64_t>{1, 2, 1}));
    // P_e = mean_t p: .475, .2125, .3125; counts 1, 2, 1 → 3/4·(.475 + .425 + .3125) = 0.909375.
    EXPECT_NEAR(layer.stats().aux_loss, 0.909375, 1e-6);
    EXPECT_NEAR(layer.stats().top1_probability, 0.65, 1e-6);  // statistics of p, not p + b
    // y_t = p[t, e_t] · FFN_{e_t}(x_t), each expert's FFN from backend ops on its own weights.
    std::vector<float> want(static_cast<size_t>(T * D));
    for (int64_t t = 0; t < T; ++t) {
      const int e = expected[t];
      std::vector<float> g(static_cast<size_t>(F)), u(g.size()), h(g.size()), out(static_cast<size_t>(D));
      be->linear_forward(g.data(), x.data() + t * D, w.gate.data() + e * F * D, nullptr, 1, D, F);
      be->linear_forward(u.data(), x.data() + t * D, w.up.data() + e * F * D, nullptr, 1, D, F);
      be->swiglu_forward(h.data(), g.data(), u.data(), F);
      be->linear_forward(out.data(), h.data(), w.down.data() + e * D * F, nullptr, 1, F, D);
      for (int64_t d = 0; d < D; ++d) want[size_t(t * D + d)] = float(p[t][e] * double(out[size_t(d)]));
    }
    EXPECT_TRUE(test::all_close(y, want, 1e-5));
    layer.forward(y.data(), x.data(), T, w.weights(), Phase::kInference, 0);  // no bias: plain top-1
    EXPECT_EQ(layer.stats().tokens_per_expert, (std::vector<int64_t>{3, 0, 1}));
  }
}

TEST(ExpertBiasUpdate, SignStepTowardsTheMeanLoad) {
  for (BackendKind kind : test::backend_kinds()) {
    auto be = backend::make_backend(kind);
    SCOPED_TRACE(std::string(be->name()));
    std::vector<float> b = {0.5f, -0.25f, 0.0f, 1.0f};
    const std::vector<int64_t> load = {5, 1, 3, 3};  // mean 3: overloaded, underloaded, balanced, balanced
    train::update_expert_bias(*be, b, load, 0.125);
    EXPECT_EQ(b, (std::vector<float>{0.375f, -0.125f, 0.0f, 1.0f}));
    std::vector<float> c = {0.1f, 0.2f, 0.3f};
    const std::vector<float> before = c;
    train::update_expert_bias(*be, c, std::vector<int64_t>{7, 7, 7}, 1e-3);  // balanced: nothing moves
    EXPECT_EQ(c, before);
    std::vector<float> d = {0.0f, 0.0f};
    train::update_expert_bias(*be, d, std::vector<int64_t>{1, 2}, 1e-3);  // mean 1.5 is no expert's load
    EXPECT_EQ(d, (std::vector<float>{float(1e-3), float(-1e-3)}));
  }
}

constexpr int64_t kB = 2, kT = 5;
const std::vector<int32_t> kIds = {3, 7, 1, 10, 0, 5, 5, 2, 9, 4};
const std::vector<int32_t> kTargets = {7, 1, 10, -1, 6, 5, 2, 9, 4, 8};

// Mixtral twin with large router weights (routing far from ties) and random parameters.
std::unique_ptr<Transformer> biased_model(backend::Backend& be) {
  const ModelConfig config = test::moe_twin(test::tiny_model_config(Family::kLlama), Family::kMixtral, 4, 2);
  auto m = std::make_unique<Transformer>(config, be);
  test::fill_random(m->params(), 21, 0.4f);
  for (size_t i = 0; i < m->params().specs().size(); ++i)
    if (m->params().specs()[i].role == WeightRole::kRouter)
      for (float& v : m->params().view(i)) v *= 8.0f;
  return m;
}

std::vector<std::vector<int64_t>> loads(const Transformer& m) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t l = 0; l < m.config().num_hidden_layers; ++l) out.push_back(m.moe_stats(l)->tokens_per_expert);
  return out;
}

TEST(ExpertBiasModel, GradientsWithBiasMatchFiniteDifferences) {
  auto be = backend::make_backend(BackendKind::kRef);
  const std::unique_ptr<Transformer> m = biased_model(*be);
  const ModelConfig& config = m->config();
  MoeOptions o = moe_options_from_config(config);
  o.aux_loss_coef = 0.1;
  o.z_loss_coef = 0.01;
  m->set_moe_options(o);
  m->forward(kIds.data(), kB, kT);
  const auto unbiased = loads(*m);
  const std::vector<float> bias = {0.45f, -0.3f, 0.0f, 0.2f};
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    EXPECT_TRUE(m->expert_bias(l).empty());  // off by default
    m->set_expert_bias(l, bias);
  }
  auto objective = [&] {
    m->forward(kIds.data(), kB, kT);
    return m->loss(kTargets.data()) + m->auxiliary_loss();
  };
  m->zero_grads();
  ASSERT_TRUE(std::isfinite(objective()));
  m->backward();
  const auto biased = loads(*m);
  EXPECT_NE(biased, unbiased) << "the bias must change some routing decision for the check to mean anything";
  bool routing_changed = false;
  test::expect_parameter_grads_match(*m, [&] {
    const double f = objective();
    routing_changed |= loads(*m) != biased;
    return f;
  }, 24);
  EXPECT_FALSE(routing_changed) << "a finite-difference step changed the routing";
}

TEST(ExpertBiasModel, DecodeUsesTheBiasAndMisuseIsCaught) {
  for (BackendKind kind : test::backend_kinds()) {
    auto be = backend::make_backend(kind);
    const std::unique_ptr<Transformer> m = biased_model(*be);
    const ModelConfig& config = m->config();
    const int64_t T = 7, V = config.vocab_size;
    const float* unbiased = m->forward(kIds.data(), 1, T);
    const std::vector<float> plain(unbiased, unbiased + T * V);
    const std::vector<float> bias = {0.45f, -0.3f, 0.0f, 0.2f};
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) m->set_expert_bias(l, bias);
    const float* full = m->forward(kIds.data(), 1, T);
    const std::vector<float> expected(full, full + T * V);
    EXPECT_NE(expected, plain);
    m->reset_cache(T);
    double scale = 0;
    for (float v : expected) scale = std::max(scale, double(std::fabs(v)));
    for (int64_t t = 0; t < T; ++t) {
      const float* row = m->decode(kIds.data() + t, 1);
      for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(row[v], expected[size_t(t * V + v)], 1e-5 * scale) << t << "," << v;
    }
    m->set_expert_bias(1, std::vector<float>(3));  // wrong size: a bug in the caller
    EXPECT_THROW(m->forward(kIds.data(), 1, T), std::logic_error);
    m->set_expert_bias(1, {});  // empty again: no bias on layer 1
    m->forward(kIds.data(), 1, T);
    EXPECT_THROW(m->expert_bias(2), std::logic_error);  // out of range
  }
  ModelConfig mixed = test::moe_twin(test::tiny_model_config(Family::kQwen3), Family::kQwen3Moe, 4, 2);
  mixed.mlp_only_layers = {0};
  auto be = backend::make_backend(BackendKind::kRef);
  Transformer m(mixed, *be);
  EXPECT_THROW(m.expert_bias(0), std::logic_error);  // a dense layer has no router to bias
  EXPECT_TRUE(m.expert_bias(1).empty());
}

}  // namespace
}  // namespace upcycle::model
