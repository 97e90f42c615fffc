// Whole-model gradients against central finite differences of the loss, for every element of every
// parameter tensor of tiny models (D=8, L=2, H=2, KV=1, S=4, F=12, V=11, B=2, T=5) of each dense
// family shape: llama (untied, tied, attention biases), qwen2 (q/k/v biases, window on layer 1
// only), qwen3 (q/k norm), mistral (window 3 < T), on both backends. Also: a zero model's loss is
// exactly log V, ignored targets count nowhere, repeated runs are bitwise identical, cpu and ref
// agree, and configs the engine cannot run are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/transformer.h"
#include "support/backend_test_support.h"
#include "support/expect_error.h"
#include "support/model_test_support.h"

namespace upcycle::model {
namespace {

using backend::BackendKind;

struct GradCase {
  std::string name;
  ModelConfig config;
};

std::vector<GradCase> grad_cases() {
  std::vector<GradCase> cases;
  cases.push_back({"llama", test::tiny_model_config(Family::kLlama)});
  ModelConfig tied = test::tiny_model_config(Family::kLlama);
  tied.tie_word_embeddings = true;
  cases.push_back({"llama_tied", tied});
  ModelConfig biased = test::tiny_model_config(Family::kLlama);
  biased.qkv_bias = biased.o_bias = true;
  cases.push_back({"llama_attention_bias", biased});
  ModelConfig qwen2 = test::tiny_model_config(Family::kQwen2);
  qwen2.sliding_window = 2;
  qwen2.max_window_layers = 1;  // layer 0 full, layer 1 windowed
  cases.push_back({"qwen2", qwen2});
  cases.push_back({"qwen3", test::tiny_model_config(Family::kQwen3)});
  ModelConfig mistral = test::tiny_model_config(Family::kMistral);
  mistral.sliding_window = 3;
  cases.push_back({"mistral", mistral});
  return cases;
}

constexpr int64_t kB = 2, kT = 5;
const std::vector<int32_t> kIds = {3, 7, 1, 10, 0, 5, 5, 2, 9, 4};
const std::vector<int32_t> kTargets = {7, 1, 10, -1, 6, 5, 2, 9, 4, 8};

double loss_of(Transformer& m) {
  m.forward(kIds.data(), kB, kT);
  return m.loss(kTargets.data());
}

class ModelGradCheck : public ::testing::TestWithParam<std::tuple<int, BackendKind>> {};

TEST_P(ModelGradCheck, EveryParameterMatchesFiniteDifferences) {
  const GradCase c = grad_cases()[size_t(std::get<0>(GetParam()))];
  SCOPED_TRACE(c.name);
  auto be = backend::make_backend(std::get<1>(GetParam()));
  Transformer m(c.config, *be);
  test::fill_random(m.params(), 11, 0.4f);
  m.zero_grads();
  const double loss0 = loss_of(m);
  m.backward();
  ASSERT_TRUE(std::isfinite(loss0));
  ASSERT_GT(loss0, 0.5);

  const size_t checked = test::expect_parameter_grads_match(m, [&] { return loss_of(m); });
  EXPECT_EQ(checked, m.params().size());
}

INSTANTIATE_TEST_SUITE_P(Families, ModelGradCheck,
                         ::testing::Combine(::testing::Range(0, int(grad_cases().size())),
                                            ::testing::ValuesIn(test::fp32_backend_kinds())),
                         [](const auto& info) {
                           return grad_cases()[size_t(std::get<0>(info.param))].name +
                                  "_" + test::backend_test_name(std::get<1>(info.param));
                         });

TEST(ModelTransformer, TiedEmbeddingGetsBothGradients) {
  ModelConfig c = test::tiny_model_config(Family::kLlama);
  c.tie_word_embeddings = true;
  auto be = backend::make_backend(BackendKind::kRef);
  Transformer m(c, *be);
  EXPECT_EQ(m.params().find("lm_head.weight"), nullptr);
  test::fill_random(m.params(), 3, 0.4f);
  loss_of(m);
  m.backward();
  // Row 8 is a target but never an input: only the lm_head path can give it a gradient.
  const float* g = m.grads().at("model.embed_tokens.weight");
  double row8 = 0;
  for (int d = 0; d < 8; ++d) row8 += std::fabs(g[8 * 8 + d]);
  EXPECT_GT(row8, 0.0);
}

TEST(ModelTransformer, ZeroWeightsGiveLogV) {
  for (BackendKind kind : test::backend_kinds()) {
    auto be = backend::make_backend(kind);
    Transformer m(test::tiny_model_config(Family::kQwen3), *be);
    const float* logits = m.forward(kIds.data(), kB, kT);
    for (int64_t i = 0; i < kB * kT * 11; ++i) ASSERT_EQ(logits[i], 0.0f);
    // ref accumulates in double: exactly log V. cpu rounds each row's log-sum-exp to float.
    if (kind == BackendKind::kRef)
      EXPECT_EQ(m.loss(kTargets.data()), std::log(11.0));
    else
      EXPECT_NEAR(m.loss(kTargets.data()), std::log(11.0), 4e-7);
  }
}

TEST(ModelTransformer, BackwardAccumulatesAndIgnoredTargetsDoNotCount) {
  auto be = backend::make_backend(BackendKind::kRef);
  Transformer m(test::tiny_model_config(Family::kLlama), *be);
  test::fill_random(m.params(), 5, 0.4f);
  loss_of(m);
  m.backward();
  std::vector<float> once(m.grads().data(), m.grads().data() + m.grads().size());
  loss_of(m);
  m.backward();
  for (size_t i = 0; i < once.size(); ++i) ASSERT_FLOAT_EQ(m.grads().data()[i], 2 * once[i]) << i;
  // All targets ignored: loss 0 and no gradient at all.
  std::vector<int32_t> none(kIds.size(), -1);
  m.zero_grads();
  m.forward(kIds.data(), kB, kT);
  EXPECT_EQ(m.loss(none.data()), 0.0);
  m.backward();
  for (size_t i = 0; i < m.grads().size(); ++i) ASSERT_EQ(m.grads().data()[i], 0.0f) << i;
}

// Logits and gradients of one model on one backend, twice from scratch.
std::pair<std::vector<float>, std::vector<float>> run_once(const ModelConfig& c, BackendKind kind) {
  auto be = backend::make_backend(kind);
  Transformer m(c, *be);
  test::fill_random(m.params(), 9, 0.4f);
  const float* logits = m.forward(kIds.data(), kB, kT);
  std::vector<float> l(logits, logits + kB * kT * c.vocab_size);
  m.loss(kTargets.data());
  m.backward();
  return {l, std::vector<float>(m.grads().data(), m.grads().data() + m.grads().size())};
}

TEST(ModelTransformer, DeterministicAndBackendsAgree) {
  for (const GradCase& c : grad_cases()) {
    SCOPED_TRACE(c.name);
    auto cpu1 = run_once(c.config, BackendKind::kCpu);
    auto cpu2 = run_once(c.config, BackendKind::kCpu);
    EXPECT_EQ(cpu1.first, cpu2.first);  // bitwise
    EXPECT_EQ(cpu1.second, cpu2.second);
    auto ref = run_once(c.config, BackendKind::kRef);
    EXPECT_EQ(ref, run_once(c.config, BackendKind::kRef));
    double lmax = 0, gmax = 0;
    for (float x : ref.first) lmax = std::max(lmax, double(std::fabs(x)));
    for (float x : ref.second) gmax = std::max(gmax, double(std::fabs(x)));
    for (size_t i = 0; i < ref.first.size(); ++i) ASSERT_NEAR(cpu1.first[i], ref.first[i], 1e-5 * lmax) << i;
    for (size_t i = 0; i < ref.second.size(); ++i) ASSERT_NEAR(cpu1.second[i], ref.second[i], 1e-5 * gmax) << i;
  }
}

TEST(ModelTransformer, RefusesUnsupportedRope) {
  auto be = backend::make_backend(BackendKind::kRef);
  ModelConfig yarn = test::tiny_model_config(Family::kLlama);
  yarn.rope.type = "yarn";
  EXPECT_UPCYCLE_ERROR(Transformer(yarn, *be, "x/config.json"), "rope type 'yarn'", "x/config.json");
}

}  // namespace
}  // namespace upcycle::model
