// dots1's config.json (Dots1Config, transformers 5.23) read, written back and refused: the DeepSeek-V3
// keys land in ModelConfig (sigmoid scoring, groups, scaling factor, first_k_dense_replace, shared
// expert = n_shared_experts × moe_intermediate_size), the window rule (from max_window_layers, no switch),
// the tensor names of Dots1MoE, and one-line errors naming the key for what the class cannot build.
#include <gtest/gtest.h>

#include <map>

#include "io/model_config.h"
#include "io/weight_table.h"
#include "support/expect_error.h"

namespace upcycle {
namespace {

const std::string kFile = "/models/d/config.json";

// A Dots1Config as transformers saves it (keys of configuration_dots1.py).
Json dots1() {
  return {{"model_type", "dots1"},       {"vocab_size", 100},          {"hidden_size", 64},
          {"intermediate_size", 128},    {"num_hidden_layers", 4},     {"num_attention_heads", 4},
          {"num_key_value_heads", 2},    {"head_dim", 16},             {"n_routed_experts", 8},
          {"n_shared_experts", 2},       {"num_experts_per_tok", 3},   {"moe_intermediate_size", 32},
          {"n_group", 4},                {"topk_group", 2},            {"norm_topk_prob", true},
          {"routed_scaling_factor", 2.5}, {"first_k_dense_replace", 1}, {"sliding_window", nullptr},
          {"max_window_layers", 62}};
}

TEST(Dots1Config, ReadsTheDeepSeekKeys) {
  const ModelConfig c = parse_model_config(dots1(), kFile);
  EXPECT_EQ(c.family, Family::kDots1);
  EXPECT_EQ(c.router_scoring, RouterScoring::kSigmoid);
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_EQ(c.num_experts_per_tok, 3);
  EXPECT_EQ(c.shared_expert_intermediate_size, 64);  // 2 × 32
  EXPECT_EQ(c.n_group, 4);
  EXPECT_EQ(c.topk_group, 2);
  EXPECT_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.topk_norm, TopkNorm::kRenormalize);
  EXPECT_EQ(c.router_aux_loss_coef, 0.0);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.is_moe_layer(0));  // below first_k_dense_replace
  EXPECT_TRUE(c.is_moe_layer(1) && c.is_moe_layer(3));
  EXPECT_FALSE(c.sliding_window);
  // The transformers-5 alias of the expert count reads too.
  Json alias = dots1();
  alias.erase("n_routed_experts");
  alias["num_local_experts"] = 8;
  EXPECT_EQ(parse_model_config(alias, kFile).num_experts, 8);
}

TEST(Dots1Config, ClassDefaults) {
  Json j = dots1();
  for (const char* key : {"n_group", "topk_group", "norm_topk_prob", "routed_scaling_factor", "first_k_dense_replace",
                          "sliding_window", "max_window_layers"})
    j.erase(key);
  j["num_experts_per_tok"] = 2;
  const ModelConfig c = parse_model_config(j, kFile);
  EXPECT_EQ(c.n_group, 1);
  EXPECT_EQ(c.topk_group, 1);
  EXPECT_EQ(c.topk_norm, TopkNorm::kNone);
  EXPECT_EQ(c.routed_scaling_factor, 1.0);
  EXPECT_TRUE(c.is_moe_layer(0));
  // The class's window (4096) starts at layer 62: a 4-layer model has none.
  EXPECT_FALSE(c.sliding_window);
}

TEST(Dots1Config, WindowFromMaxWindowLayers) {
  Json j = dots1();
  j["sliding_window"] = 16;
  j["max_window_layers"] = 2;
  const ModelConfig c = parse_model_config(j, kFile);
  EXPECT_FALSE(c.sliding_window_for_layer(1));
  EXPECT_EQ(c.sliding_window_for_layer(2), 16);
  const Json out = model_config_to_json(c);
  EXPECT_EQ(out["layer_types"], Json({"full_attention", "full_attention", "sliding_attention", "sliding_attention"}));
}

TEST(Dots1Config, WritesTheClassKeysAndReadsThemBack) {
  const ModelConfig c = parse_model_config(dots1(), kFile);
  const Json out = model_config_to_json(c);
  EXPECT_EQ(out["architectures"], Json({"Dots1ForCausalLM"}));
  EXPECT_EQ(out["n_routed_experts"], 8);
  EXPECT_EQ(out["n_shared_experts"], 2);
  EXPECT_EQ(out["first_k_dense_replace"], 1);
  EXPECT_EQ(out["routed_scaling_factor"], 2.5);
  EXPECT_TRUE(out["sliding_window"].is_null());  // null, not absent: absent would mean 4096
  for (const char* key : {"num_experts", "num_local_experts", "mlp_only_layers", "decoder_sparse_step",
                          "router_aux_loss_coef", "shared_expert_intermediate_size", "use_sliding_window"})
    EXPECT_FALSE(out.contains(key)) << key;
  // DeepSeek-V3's routing keys, which vLLM's dots1 reads and Dots1Config lacks (engine_rules.cpp).
  EXPECT_FALSE(c.deepseek_routing_keys);
  EXPECT_EQ(out["scoring_func"], "sigmoid");
  EXPECT_EQ(out["topk_method"], "noaux_tc");
  EXPECT_EQ(out["moe_layer_freq"], 1);
  const ModelConfig back = parse_model_config(out, kFile);
  EXPECT_TRUE(back.deepseek_routing_keys);
  EXPECT_EQ(back.n_group, 4);
  EXPECT_EQ(back.first_k_dense_replace, 1);
  EXPECT_EQ(back.shared_expert_intermediate_size, 64);
}

TEST(Dots1Config, TensorNamesOfDots1MoE) {
  const ModelConfig c = parse_model_config(dots1(), kFile);
  std::map<std::string, Shape> names;
  for (const WeightSpec& w : expected_weights(c)) names[w.name] = w.shape;
  EXPECT_EQ(names.at("model.layers.0.mlp.down_proj.weight"), (Shape{64, 128}));  // dense first layer
  EXPECT_EQ(names.at("model.layers.1.mlp.gate.weight"), (Shape{8, 64}));
  EXPECT_EQ(names.at("model.layers.1.mlp.gate.e_score_correction_bias"), (Shape{8}));
  EXPECT_EQ(names.at("model.layers.1.mlp.experts.7.down_proj.weight"), (Shape{64, 32}));
  EXPECT_EQ(names.at("model.layers.3.mlp.shared_experts.up_proj.weight"), (Shape{64, 64}));
  EXPECT_EQ(names.count("model.layers.1.mlp.shared_expert_gate.weight"), 0u);  // ungated
  EXPECT_EQ(names.count("model.layers.0.mlp.gate.e_score_correction_bias"), 0u);
  EXPECT_EQ(router_bias_name(2), "model.layers.2.mlp.gate.e_score_correction_bias");
}

TEST(Dots1Config, RefusesWhatTheClassCannotRun) {
  auto with = [](std::initializer_list<std::pair<const char*, Json>> changes) {
    Json j = dots1();
    for (const auto& [k, v] : changes) j[k] = v;
    return j;
  };
  EXPECT_UPCYCLE_ERROR(parse_model_config(with({{"n_group", 3}}), kFile), "'n_group' (3) must divide", kFile);
  EXPECT_UPCYCLE_ERROR(parse_model_config(with({{"n_group", 8}, {"topk_group", 1}, {"num_experts_per_tok", 1}}), kFile),
                       "groups of at least 2", kFile);
  EXPECT_UPCYCLE_ERROR(parse_model_config(with({{"topk_group", 5}}), kFile), "'topk_group' (5) must not exceed", kFile);
  EXPECT_UPCYCLE_ERROR(parse_model_config(with({{"topk_group", 1}}), kFile), "'num_experts_per_tok' (3) exceeds the 2",
                       kFile);
  EXPECT_UPCYCLE_ERROR(parse_model_config(with({{"first_k_dense_replace", 5}}), kFile), "'first_k_dense_replace' (5)",
                       kFile);
  EXPECT_UPCYCLE_ERROR(parse_model_config(with({{"routed_scaling_factor", 0.0}}), kFile), "'routed_scaling_factor'",
                       kFile);
  // DeepSeek-V3 keys with other values: vLLM would obey them and transformers ignore them.
  EXPECT_UPCYCLE_ERROR(parse_model_config(with({{"scoring_func", "softmax"}}), kFile), "'scoring_func' is 'softmax'", kFile);
  EXPECT_UPCYCLE_ERROR(parse_model_config(with({{"topk_method", "greedy"}}), kFile), "'topk_method' is 'greedy'", kFile);
  EXPECT_UPCYCLE_ERROR(parse_model_config(with({{"moe_layer_freq", 2}}), kFile), "'moe_layer_freq' must be 1", kFile);
  Json no_shared = dots1();
  no_shared.erase("n_shared_experts");
  EXPECT_UPCYCLE_ERROR(parse_model_config(no_shared, kFile), "n_shared_experts", kFile);
  // Other families cannot carry DeepSeek routing.
  ModelConfig q = parse_model_config(dots1(), kFile);
  q.family = Family::kQwen3Moe;
  q.shared_expert_intermediate_size = 0;
  q.max_window_layers = 0;
  EXPECT_UPCYCLE_ERROR(validate_model_config(q, kFile), "use dots1", kFile);
}

}  // namespace
}  // namespace upcycle
