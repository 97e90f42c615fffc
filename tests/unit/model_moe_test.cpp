// MoE layers inside the whole transformer: function preservation of sparse upcycling (every expert a
// copy of the dense FFN, any router, renormalised top-k → the MoE model computes the dense model's
// logits), mixed dense/MoE stacks, finite-difference gradients of CE + aux + z losses for every
// parameter across routing modes, and per-layer routing statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "model/evaluate.h"
#include "model/transformer.h"
#include "support/backend_test_support.h"
#include "support/model_test_support.h"

namespace upcycle::model {
namespace {

using backend::BackendKind;

constexpr int64_t kB = 2, kT = 5;
const std::vector<int32_t> kIds = {3, 7, 1, 10, 0, 5, 5, 2, 9, 4};
const std::vector<int32_t> kTargets = {7, 1, 10, -1, 6, 5, 2, 9, 4, 8};

// Sparse upcycling of the parameters: shared names copied, each expert a copy of its layer's dense
// FFN, routers ~ N(0, 1) (deliberately far from the 0.02 init: preservation must not depend on it).
void upcycle_params(const Transformer& dense, Transformer& moe) {
  for (size_t i = 0; i < moe.params().specs().size(); ++i) {
    const WeightSpec& spec = moe.params().specs()[i];
    auto to = moe.params().view(i);
    std::string from;
    const std::string layer = "model.layers." + std::to_string(spec.layer) + ".mlp.";
    switch (spec.role) {
      case WeightRole::kRouter: CounterRng(99, spec.name).fill_normal(to.data(), 0, to.size(), 0.0f, 1.0f); continue;
      case WeightRole::kExpertGate: from = layer + "gate_proj.weight"; break;
      case WeightRole::kExpertUp: from = layer + "up_proj.weight"; break;
      case WeightRole::kExpertDown: from = layer + "down_proj.weight"; break;
      default: from = spec.name;
    }
    const float* src = dense.params().at(from);
    std::copy(src, src + to.size(), to.begin());
  }
}

// Builds a random dense model of `dense_family` (the tiny shapes), upcycles its parameters into `moe`
// and returns the dense model's logits for kIds.
std::vector<float> upcycled_logits(Family dense_family, Transformer& moe, backend::Backend& be) {
  ModelConfig dense_config = test::tiny_model_config(dense_family);
  Transformer dense(dense_config, be);
  test::fill_random(dense.params(), 5, 0.4f);
  upcycle_params(dense, moe);
  const float* logits = dense.forward(kIds.data(), kB, kT);
  return std::vector<float>(logits, logits + kB * kT * dense_config.vocab_size);
}

struct Twin {
  std::string name;
  Family dense, moe;
  std::vector<int64_t> mlp_only_layers;
};

void PrintTo(const Twin& t, std::ostream* os) { *os << t.name; }

class ModelMoePreservation : public ::testing::TestWithParam<std::tuple<Twin, BackendKind>> {};

TEST_P(ModelMoePreservation, CopiedExpertsReproduceDenseLogits) {
  const auto& [twin, kind] = GetParam();
  auto be = backend::make_backend(kind);
  ModelConfig moe_config = test::moe_twin(test::tiny_model_config(twin.dense), twin.moe, 4, 2);
  moe_config.mlp_only_layers = twin.mlp_only_layers;
  Transformer moe(moe_config, *be);
  const std::vector<float> dense_logits = upcycled_logits(twin.dense, moe, *be);
  const float* b = moe.forward(kIds.data(), kB, kT);
  double scale = 0;
  for (float x : dense_logits) scale = std::max(scale, double(std::fabs(x)));
  for (size_t i = 0; i < dense_logits.size(); ++i) ASSERT_NEAR(b[i], dense_logits[i], 1e-5 * scale) << i;
  // The routing really spread tokens over several experts (otherwise the test would be weak).
  for (int64_t l = 0; l < moe_config.num_hidden_layers; ++l) {
    const MoeStats* stats = moe.moe_stats(l);
    if (!moe_config.is_moe_layer(l)) {
      EXPECT_EQ(stats, nullptr);
      continue;
    }
    ASSERT_NE(stats, nullptr);
    int busy = 0;
    for (int64_t n : stats->tokens_per_expert) busy += n > 0;
    EXPECT_GE(busy, 3) << "layer " << l;
  }
}

TEST_P(ModelMoePreservation, WithoutRenormalisationOutputsDiffer) {
  const auto& [twin, kind] = GetParam();
  auto be = backend::make_backend(kind);
  ModelConfig moe_config = test::moe_twin(test::tiny_model_config(twin.dense), twin.moe, 4, 2);
  moe_config.topk_norm = TopkNorm::kNone;  // FFN output scaled by Σ top-k p < 1: not function-preserving
  if (twin.moe == Family::kMixtral) {  // Mixtral always renormalises: such a config is refused by name
    EXPECT_THROW(Transformer(moe_config, *be), Error);
    return;
  }
  Transformer moe(moe_config, *be);
  const std::vector<float> dense_logits = upcycled_logits(twin.dense, moe, *be);
  const float* b = moe.forward(kIds.data(), kB, kT);
  double diff = 0;
  for (size_t i = 0; i < dense_logits.size(); ++i) diff = std::max(diff, double(std::fabs(b[i] - dense_logits[i])));
  EXPECT_GT(diff, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Twins, ModelMoePreservation,
    ::testing::Combine(::testing::Values(Twin{"llama_mixtral", Family::kLlama, Family::kMixtral, {}},
                                         Twin{"qwen2_qwen2moe", Family::kQwen2, Family::kQwen2Moe, {}},
                                         Twin{"qwen3_qwen3moe", Family::kQwen3, Family::kQwen3Moe, {}},
                                         Twin{"qwen3_qwen3moe_layer1_only", Family::kQwen3, Family::kQwen3Moe, {0}}),
                       ::testing::ValuesIn(test::backend_kinds())),
    [](const auto& info) {
      return std::get<0>(info.param).name + "_" + test::backend_test_name(std::get<1>(info.param));
    });

struct MoeGradCase {
  std::string name;
  ModelConfig config;
  MoeOptions options;
};

std::vector<MoeGradCase> moe_grad_cases() {
  std::vector<MoeGradCase> cases;
  ModelConfig mixtral = test::moe_twin(test::tiny_model_config(Family::kLlama), Family::kMixtral, 4, 2);
  MoeOptions o = moe_options_from_config(mixtral);
  o.aux_loss_coef = 0.1;
  o.z_loss_coef = 0.01;
  cases.push_back({"mixtral_aux_z", mixtral, o});
  ModelConfig qwen2moe = test::moe_twin(test::tiny_model_config(Family::kQwen2), Family::kQwen2Moe, 4, 2);
  qwen2moe.topk_norm = TopkNorm::kNone;
  qwen2moe.shared_expert_intermediate_size = 6;  // shared expert with its sigmoid gate
  MoeOptions q = moe_options_from_config(qwen2moe);
  q.aux_loss_coef = 0.05;
  q.capacity_factor = 1.0;  // some tokens dropped
  cases.push_back({"qwen2moe_shared_capacity", qwen2moe, q});
  ModelConfig qwen3moe = test::moe_twin(test::tiny_model_config(Family::kQwen3), Family::kQwen3Moe, 4, 1);
  qwen3moe.mlp_only_layers = {0};
  MoeOptions e = moe_options_from_config(qwen3moe);
  e.mode = RoutingMode::kExpertChoice;
  e.capacity_factor = 2.0;
  cases.push_back({"qwen3moe_expert_choice_partial", qwen3moe, e});
  return cases;
}

class ModelMoeGradCheck : public ::testing::TestWithParam<std::tuple<int, BackendKind>> {};

double objective(Transformer& m) {
  m.forward(kIds.data(), kB, kT);
  return m.loss(kTargets.data()) + m.auxiliary_loss();
}

TEST_P(ModelMoeGradCheck, EveryParameterMatchesFiniteDifferences) {
  const MoeGradCase c = moe_grad_cases()[size_t(std::get<0>(GetParam()))];
  SCOPED_TRACE(c.name);
  auto be = backend::make_backend(std::get<1>(GetParam()));
  Transformer m(c.config, *be);
  m.set_moe_options(c.options);
  test::fill_random(m.params(), 21, 0.4f);
  // Large router weights keep routing decisions far from ties, so ±h never flips a choice.
  for (size_t i = 0; i < m.params().specs().size(); ++i)
    if (m.params().specs()[i].role == WeightRole::kRouter)
      for (float& x : m.params().view(i)) x *= 8.0f;
  m.zero_grads();
  const double f0 = objective(m);
  m.backward();
  ASSERT_TRUE(std::isfinite(f0));
  if (c.options.capacity_factor > 0 && c.options.mode == RoutingMode::kTokenChoice) {
    int64_t dropped = 0;
    for (int64_t l = 0; l < c.config.num_hidden_layers; ++l) dropped += m.moe_stats(l)->dropped;
    EXPECT_GT(dropped, 0) << "the capacity case must actually drop tokens";
  }
  test::expect_parameter_grads_match(m, [&] { return objective(m); }, 24);
}

INSTANTIATE_TEST_SUITE_P(Routing, ModelMoeGradCheck,
                         ::testing::Combine(::testing::Range(0, int(moe_grad_cases().size())),
                                            ::testing::ValuesIn(test::fp32_backend_kinds())),
                         [](const auto& info) {
                           return moe_grad_cases()[size_t(std::get<0>(info.param))].name +
                                  "_" + test::backend_test_name(std::get<1>(info.param));
                         });

TEST(ModelMoe, StatsAndAuxiliaryLossPerLayer) {
  auto be = backend::make_backend(BackendKind::kCpu);
  ModelConfig config = test::moe_twin(test::tiny_model_config(Family::kLlama), Family::kMixtral, 4, 2);
  Transformer m(config, *be);
  MoeOptions o = moe_options_from_config(config);
  o.aux_loss_coef = 0.5;
  o.z_loss_coef = 0.25;
  m.set_moe_options(o);
  test::fill_random(m.params(), 3, 0.4f);
  m.forward(kIds.data(), kB, kT);
  double expected = 0;
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    const MoeStats* s = m.moe_stats(l);
    ASSERT_NE(s, nullptr);
    int64_t kept = 0;
    for (int64_t n : s->tokens_per_expert) kept += n;
    EXPECT_EQ(kept, kB * kT * 2);  // dropless top-2: every token reaches two experts
    EXPECT_EQ(s->dropped, 0);
    EXPECT_GE(s->aux_loss, 1.0 - 1e-9);  // perfect balance is the minimum, 1
    EXPECT_GT(s->router_entropy, 0.0);
    EXPECT_LE(s->router_entropy, std::log(4.0) + 1e-9);
    expected += 0.5 * s->aux_loss + 0.25 * s->z_loss;
  }
  EXPECT_NEAR(m.auxiliary_loss(), expected, 1e-12);
}

// KV-cache decoding runs MoE layers per new token; with dropless token choice, routing is per token,
// so decoding token by token reproduces the full forward (expert choice would not: it sees the batch).
TEST(ModelMoe, DecodeTokenByTokenMatchesForward) {
  for (BackendKind kind : test::backend_kinds()) {
    auto be = backend::make_backend(kind);
    ModelConfig config = test::moe_twin(test::tiny_model_config(Family::kQwen2), Family::kQwen2Moe, 4, 2);
    config.shared_expert_intermediate_size = 6;
    Transformer m(config, *be);
    test::fill_random(m.params(), 8, 0.4f);
    const int64_t T = 7, V = config.vocab_size;
    const float* full = m.forward(kIds.data(), 1, T);
    std::vector<float> expected(full, full + T * V);
    m.reset_cache(T);
    double scale = 0;
    for (float x : expected) scale = std::max(scale, double(std::fabs(x)));
    for (int64_t t = 0; t < T; ++t) {
      const float* row = m.decode(kIds.data() + t, 1);
      for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(row[v], expected[size_t(t * V + v)], 1e-5 * scale) << t << "," << v;
    }
  }
}

// eval's routing summary: counts add up over batches, token-weighted means equal a single forward's
// statistics when everything fits in one batch.
TEST(ModelMoe, EvaluationSummarisesRoutingPerLayer) {
  auto be = backend::make_backend(BackendKind::kCpu);
  ModelConfig config = test::moe_twin(test::tiny_model_config(Family::kQwen3), Family::kQwen3Moe, 4, 2);
  config.mlp_only_layers = {0};
  Transformer m(config, *be);
  test::fill_random(m.params(), 4, 0.4f);
  const int64_t seq_len = 4, windows = 6;
  std::vector<int32_t> tokens;
  for (int64_t i = 0; i < windows * (seq_len + 1); ++i) tokens.push_back(int32_t((i * 7 + 3) % config.vocab_size));
  EvalResult batched = evaluate_windows(m, tokens, seq_len, 2, nullptr);
  EvalResult single = evaluate_windows(m, tokens, seq_len, windows, nullptr);
  ASSERT_EQ(batched.routing.size(), 1u);  // layer 0 is dense
  EXPECT_EQ(batched.routing[0].layer, 1);
  int64_t kept = 0;
  for (int64_t n : batched.routing[0].tokens_per_expert) kept += n;
  EXPECT_EQ(kept, windows * seq_len * 2);
  EXPECT_EQ(batched.routing[0].tokens_per_expert, single.routing[0].tokens_per_expert);
  EXPECT_NEAR(batched.routing[0].router_entropy, single.routing[0].router_entropy, 1e-6);
  EXPECT_NEAR(batched.routing[0].top1_probability, single.routing[0].top1_probability, 1e-6);
  const MoeStats* last = m.moe_stats(1);  // the single-batch run was the last forward
  EXPECT_NEAR(single.routing[0].router_entropy, last->router_entropy, 1e-9);
  EXPECT_NEAR(single.routing[0].top1_probability, last->top1_probability, 1e-9);
  EXPECT_NEAR(single.routing[0].aux_loss, last->aux_loss, 1e-9);
}

}  // namespace
}  // namespace upcycle::model
