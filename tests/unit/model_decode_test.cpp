// KV-cache decoding against the full forward: a prompt decoded at once and then token by token (and
// in uneven chunks) gives the logits of a full forward over the whole sequence, within 1e-5 relative,
// for llama, qwen2 (q/k/v biases), qwen3 (q/k norm) and mistral with a window shorter than the
// sequence, on both backends. Also: reset_cache starts over, and forward() between decodes does not
// disturb the cache.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/transformer.h"
#include "support/backend_test_support.h"
#include "support/model_test_support.h"

namespace upcycle::model {
namespace {

using backend::BackendKind;

constexpr double kRtol = 1e-5;
const std::vector<int32_t> kSeq = {3, 7, 1, 10, 0, 5, 5, 2, 9, 4, 8};  // T = 11

struct DecodeCase {
  std::string name;
  ModelConfig config;
};

std::vector<DecodeCase> decode_cases() {
  std::vector<DecodeCase> cases;
  cases.push_back({"llama", test::tiny_model_config(Family::kLlama)});
  ModelConfig qwen2 = test::tiny_model_config(Family::kQwen2);
  qwen2.qkv_bias = true;
  cases.push_back({"qwen2", qwen2});
  ModelConfig qwen3 = test::tiny_model_config(Family::kQwen3);
  qwen3.qk_norm = true;
  cases.push_back({"qwen3", qwen3});
  ModelConfig mistral = test::tiny_model_config(Family::kMistral);
  mistral.sliding_window = 3;  // < T: early keys drop out of the window
  cases.push_back({"mistral", mistral});
  return cases;
}

std::vector<float> rows(const float* logits, int64_t n, int64_t V) { return std::vector<float>(logits, logits + n * V); }

// Decodes kSeq in chunks of the given sizes and returns the concatenated logits.
std::vector<float> decode_in_chunks(Transformer& m, const std::vector<int64_t>& chunks) {
  const int64_t V = m.config().vocab_size;
  m.reset_cache(int64_t(kSeq.size()));
  std::vector<float> out;
  int64_t pos = 0;
  for (int64_t n : chunks) {
    const auto r = rows(m.decode(kSeq.data() + pos, n), n, V);
    out.insert(out.end(), r.begin(), r.end());
    pos += n;
  }
  EXPECT_EQ(pos, int64_t(kSeq.size()));
  EXPECT_EQ(m.cache_length(), pos);
  return out;
}

class ModelDecode : public ::testing::TestWithParam<std::tuple<int, BackendKind>> {};

TEST_P(ModelDecode, MatchesFullForward) {
  const DecodeCase c = decode_cases()[size_t(std::get<0>(GetParam()))];
  auto be = backend::make_backend(std::get<1>(GetParam()));
  Transformer m(c.config, *be);
  test::fill_random(m.params(), 42, 0.5f);
  const int64_t T = int64_t(kSeq.size()), V = c.config.vocab_size;
  const auto full = rows(m.forward(kSeq.data(), 1, T), T, V);

  // Prompt of 4 at once, then one token at a time.
  std::vector<int64_t> stepwise = {4};
  for (int64_t t = 4; t < T; ++t) stepwise.push_back(1);
  EXPECT_TRUE(test::all_close(decode_in_chunks(m, stepwise), full, kRtol)) << c.name;
  EXPECT_TRUE(test::all_close(decode_in_chunks(m, {1, 1, 5, 3, 1}), full, kRtol)) << c.name;
  EXPECT_TRUE(test::all_close(decode_in_chunks(m, {T}), full, kRtol)) << c.name;
  // The logits are not trivially equal across positions.
  EXPECT_GT(test::max_abs(full), 0.1);
  EXPECT_FALSE(test::all_close(rows(full.data(), 1, V), rows(full.data() + V, 1, V), 1e-3));
}

TEST_P(ModelDecode, ForwardBetweenDecodesLeavesCacheIntact) {
  const DecodeCase c = decode_cases()[size_t(std::get<0>(GetParam()))];
  auto be = backend::make_backend(std::get<1>(GetParam()));
  Transformer m(c.config, *be);
  test::fill_random(m.params(), 7, 0.5f);
  const int64_t T = int64_t(kSeq.size()), V = c.config.vocab_size;
  const auto full = rows(m.forward(kSeq.data(), 1, T), T, V);
  m.reset_cache(T);
  m.decode(kSeq.data(), 6);
  m.forward(kSeq.data(), 1, 3);  // unrelated forward of another length
  const auto tail = rows(m.decode(kSeq.data() + 6, T - 6), T - 6, V);
  EXPECT_TRUE(test::all_close(tail, std::vector<float>(full.begin() + 6 * V, full.end()), kRtol)) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Families, ModelDecode,
                         ::testing::Combine(::testing::Range(0, 4), ::testing::ValuesIn(test::backend_kinds())),
                         [](const auto& info) {
                           return decode_cases()[size_t(std::get<0>(info.param))].name +
                                  "_" + test::backend_test_name(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace upcycle::model
