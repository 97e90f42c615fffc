// FLOPs per token counted by hand for the tiny test shapes (V=11, D=8, L=2, H=2, KV=1, S=4 → Q=8,
// K=4, F=12): a dense llama, Mixtral top-2 (and expert choice with capacity 1.5), qwen2_moe with a
// shared expert and a dense layer, tied and untied embeddings, and a sliding-window layer.
//   attention projections per layer: q D·Q + k D·K + v D·K + o Q·D = 64 + 32 + 32 + 64 = 192
//   dense FFN 3·D·F = 288; router E·D = 32; lm_head V·D = 88
//   attention FLOPs per layer per token: 4·Q·seq_len = 32·seq_len
#include <gtest/gtest.h>

#include "support/model_test_support.h"
#include "train/flops.h"

namespace upcycle::train {
namespace {

using test::moe_twin, test::tiny_model_config;

void expect_flops(const FlopsPerToken& f, int64_t params, double attention) {
  EXPECT_EQ(f.matmul_params, params);
  EXPECT_DOUBLE_EQ(f.attention, attention);
  EXPECT_DOUBLE_EQ(f.forward, 2.0 * double(params) + attention);
  EXPECT_DOUBLE_EQ(f.train, 3.0 * f.forward);
}

TEST(Flops, DenseTiedAndUntied) {
  ModelConfig c = tiny_model_config(Family::kLlama);
  // 2·(192 + 288) + 88 = 1048; attention 2 layers · 32 · 16 = 1024.
  expect_flops(flops_per_token(c, 16, 0), 1048, 1024);
  EXPECT_DOUBLE_EQ(flops_per_token(c, 16, 0).forward, 3120);  // 2·1048 + 1024
  EXPECT_DOUBLE_EQ(flops_per_token(c, 16, 0).train, 9360);
  c.tie_word_embeddings = true;  // the logits matmul still runs: same count
  expect_flops(flops_per_token(c, 16, 0), 1048, 1024);
  c.o_bias = true;  // biases are not matmuls
  expect_flops(flops_per_token(c, 4, 0), 1048, 2 * 32 * 4);
}

TEST(Flops, MixtralTopTwoAndExpertChoice) {
  ModelConfig c = moe_twin(tiny_model_config(Family::kLlama), Family::kMixtral, 4, 2);
  // Per layer 192 + 32 + 2·288 = 800; 2·800 + 88 = 1688.
  expect_flops(flops_per_token(c, 16, 2), 1688, 1024);
  c.tie_word_embeddings = true;
  expect_flops(flops_per_token(c, 16, 2), 1688, 1024);
  // Expert choice, capacity factor 1.5: 192 + 32 + 1.5·288 = 656 per layer; 2·656 + 88 = 1400.
  expect_flops(flops_per_token(c, 16, 1.5), 1400, 1024);
}

TEST(Flops, Qwen2MoeSharedExpertAndDenseLayer) {
  ModelConfig c = moe_twin(tiny_model_config(Family::kQwen2), Family::kQwen2Moe, 4, 2);
  c.shared_expert_intermediate_size = 6;
  // MoE layer: 192 + 32 + 2·288 + shared 3·8·6 = 144 + its gate 8 → 952; 2·952 + 88 = 1992 (q/k/v biases
  // of qwen2 are not counted).
  expect_flops(flops_per_token(c, 16, 2), 1992, 1024);
  c.tie_word_embeddings = true;
  expect_flops(flops_per_token(c, 16, 2), 1992, 1024);
  c.mlp_only_layers = {0};  // layer 0 dense: 480 + 952 + 88 = 1520
  expect_flops(flops_per_token(c, 16, 2), 1520, 1024);
}

TEST(Flops, SlidingWindowCountsTheKeysAQuerySees) {
  ModelConfig c = tiny_model_config(Family::kMistral);
  c.sliding_window = 4;
  expect_flops(flops_per_token(c, 16, 0), 1048, 2 * 32 * 4);   // window 4 < 16
  expect_flops(flops_per_token(c, 3, 0), 1048, 2 * 32 * 3);    // sequence shorter than the window
}

}  // namespace
}  // namespace upcycle::train
