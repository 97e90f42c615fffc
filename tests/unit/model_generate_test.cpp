// Generation and sampling: greedy generate() equals the argmax of repeated full forwards (no cache,
// an independent check of the decoder and the loop); seeds reproduce; top-p → 0 is greedy; eos
// stops (and is emitted); sample_token follows the nucleus and inverse-CDF rules on hand-made
// distributions; eos_token_id parsing accepts int, list, null or absence and names config.json
// otherwise.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "backend/backend.h"
#include "model/generate.h"
#include "model/transformer.h"
#include "support/backend_test_support.h"
#include "support/expect_error.h"
#include "support/model_test_support.h"

namespace upcycle::model {
namespace {

using backend::BackendKind;

const std::vector<int32_t> kPrompt = {3, 7, 1, 10};

// Greedy continuation by full forwards over the growing sequence.
std::vector<int32_t> greedy_by_full_forward(Transformer& m, int64_t n) {
  std::vector<int32_t> seq = kPrompt, out;
  const int64_t V = m.config().vocab_size;
  for (int64_t k = 0; k < n; ++k) {
    const float* last = m.forward(seq.data(), 1, int64_t(seq.size())) + (int64_t(seq.size()) - 1) * V;
    const int32_t next = int32_t(std::max_element(last, last + V) - last);
    out.push_back(next);
    seq.push_back(next);
  }
  return out;
}

GenerateOptions sampling(double temperature, double top_p, uint64_t seed, int64_t n = 16) {
  GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling = {temperature, top_p};
  o.seed = seed;
  return o;
}

TEST(GenerateModel, GreedyEqualsArgmaxOfFullForwards) {
  for (auto kind : test::backend_kinds()) {
    for (Family family : {Family::kLlama, Family::kMistral, Family::kQwen3}) {
      ModelConfig config = test::tiny_model_config(family);
      if (family == Family::kMistral) config.sliding_window = 3;
      auto be = backend::make_backend(kind);
      Transformer m(config, *be);
      test::fill_random(m.params(), 11, 0.7f);
      const auto want = greedy_by_full_forward(m, 12);
      const GenerateResult got = generate(m, kPrompt, sampling(0.0, 1.0, 0, 12));
      EXPECT_EQ(got.tokens, want) << be->name();
      EXPECT_FALSE(got.stopped_at_eos);
      EXPECT_GT(std::set<int32_t>(want.begin(), want.end()).size(), 1u);  // not a constant stream
    }
  }
}

TEST(GenerateModel, SeedsReproduceAndDiffer) {
  auto be = backend::make_backend(BackendKind::kCpu);
  Transformer m(test::tiny_model_config(Family::kLlama), *be);
  test::fill_random(m.params(), 5, 0.05f);  // small weights: a spread-out next-token distribution
  const auto a = generate(m, kPrompt, sampling(1.0, 1.0, 1)).tokens;
  EXPECT_EQ(generate(m, kPrompt, sampling(1.0, 1.0, 1)).tokens, a);
  EXPECT_NE(generate(m, kPrompt, sampling(1.0, 1.0, 2)).tokens, a);
  EXPECT_EQ(a.size(), 16u);
}

TEST(GenerateModel, TinyTopPIsGreedy) {
  auto be = backend::make_backend(BackendKind::kCpu);
  Transformer m(test::tiny_model_config(Family::kQwen2), *be);
  test::fill_random(m.params(), 9, 0.3f);
  const auto greedy = generate(m, kPrompt, sampling(0.0, 1.0, 0)).tokens;
  for (uint64_t seed : {1, 2, 3}) EXPECT_EQ(generate(m, kPrompt, sampling(1.5, 1e-9, seed)).tokens, greedy);
}

TEST(GenerateModel, EosStopsAndIsEmitted) {
  auto be = backend::make_backend(BackendKind::kCpu);
  Transformer m(test::tiny_model_config(Family::kLlama), *be);
  test::fill_random(m.params(), 11, 0.7f);
  const auto greedy = generate(m, kPrompt, sampling(0.0, 1.0, 0, 10)).tokens;
  GenerateOptions o = sampling(0.0, 1.0, 0, 10);
  o.eos_ids = {99, greedy[3]};
  const GenerateResult r = generate(m, kPrompt, o);
  const auto first = std::find(greedy.begin(), greedy.end(), greedy[3]);
  EXPECT_EQ(r.tokens, std::vector<int32_t>(greedy.begin(), first + 1));
  EXPECT_TRUE(r.stopped_at_eos);
}

TEST(GenerateSampling, ArgmaxTakesLowestIdOnTies) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(argmax_token(logits.data(), 4), 1);
  EXPECT_EQ(sample_token(logits.data(), 4, {0.0, 1.0}, 0.99), 1);
  EXPECT_EQ(sample_token(logits.data(), 4, {1.0, 1e-9}, 0.99), 1);  // nucleus of one: the greedy token
}

TEST(GenerateSampling, InverseCdfOverNucleus) {
  // Probabilities 0.5, 0.2, 0.3 at temperature 1; ranked 0, 2, 1.
  const std::vector<float> logits = {float(std::log(0.5)), float(std::log(0.2)), float(std::log(0.3))};
  const SamplingOptions all{1.0, 1.0};
  EXPECT_EQ(sample_token(logits.data(), 3, all, 0.0), 0);
  EXPECT_EQ(sample_token(logits.data(), 3, all, 0.49), 0);
  EXPECT_EQ(sample_token(logits.data(), 3, all, 0.51), 2);
  EXPECT_EQ(sample_token(logits.data(), 3, all, 0.79), 2);
  EXPECT_EQ(sample_token(logits.data(), 3, all, 0.81), 1);
  // top_p 0.6: mass before rank 1 is 0.5 < 0.6 (kept), before rank 2 is 0.8 (dropped): {0, 2}, mass 0.8.
  const SamplingOptions nucleus{1.0, 0.6};
  EXPECT_EQ(sample_token(logits.data(), 3, nucleus, 0.6), 0);    // 0.48 < 0.5
  EXPECT_EQ(sample_token(logits.data(), 3, nucleus, 0.7), 2);    // 0.56
  EXPECT_EQ(sample_token(logits.data(), 3, nucleus, 0.999), 2);  // never token 1
  // top_p exactly 0.5: only token 0.
  EXPECT_EQ(sample_token(logits.data(), 3, {1.0, 0.5}, 0.999), 0);
  // Boundary, exactly representable: two tokens of mass 0.5 and top_p 0.5 keep only the first
  // (the mass before the second is not < top_p), as HF removes cumulative mass ≤ 1 − top_p.
  const std::vector<float> even = {1.0f, 1.0f};
  EXPECT_EQ(sample_token(even.data(), 2, {1.0, 0.5}, 0.99), 0);
  EXPECT_EQ(sample_token(even.data(), 2, {1.0, 0.51}, 0.99), 1);
  // High temperature flattens: probabilities → 1/3 each, so u = 0.5 lands on rank 1.
  EXPECT_EQ(sample_token(logits.data(), 3, {1e6, 1.0}, 0.5), 2);
}

TEST(GenerateSampling, EosTokenIdsFromConfig) {
  ModelConfig c = test::tiny_model_config(Family::kLlama);
  c.raw = Json::object();
  EXPECT_EQ(eos_token_ids(c, "cfg"), std::vector<int32_t>{});
  c.raw["eos_token_id"] = nullptr;
  EXPECT_EQ(eos_token_ids(c, "cfg"), std::vector<int32_t>{});
  c.raw["eos_token_id"] = 7;
  EXPECT_EQ(eos_token_ids(c, "cfg"), std::vector<int32_t>{7});
  c.raw["eos_token_id"] = Json::array({2, 9});
  EXPECT_EQ(eos_token_ids(c, "cfg"), (std::vector<int32_t>{2, 9}));
  c.raw["eos_token_id"] = "2";
  EXPECT_UPCYCLE_ERROR(eos_token_ids(c, "cfg"), "eos_token_id must be", "cfg");
  c.raw["eos_token_id"] = Json::array({2, -1});
  EXPECT_UPCYCLE_ERROR(eos_token_ids(c, "cfg"), "eos_token_id must be", "cfg");
}

}  // namespace
}  // namespace upcycle::model
