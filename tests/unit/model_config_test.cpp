// config.json parsing and writing: released models' configs in v4 and v5 spelling for every family,
// HF defaults for absent keys, the round trip parse(to_json(parse(x))) == parse(x), key order and
// unknown keys on rewrite, and one test per user error checking that the message names the key.
#include "io/model_config.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "support/hf_configs.h"
#include "support/test_support.h"

namespace upcycle {
namespace {

const std::string kFile = "/models/x/config.json";

ModelConfig parse(const std::string& text) { return parse_model_config(parse_json(text, "config.json", kFile), kFile); }

// transformers v5 spelling of a v4 file: rope_theta/rope_scaling -> rope_parameters, torch_dtype -> dtype,
// each at the position of the first key it replaces (as a v5 save_pretrained would write them).
Json to_v5(const Json& v4) {
  Json out = Json::object();
  Json rope = v4.contains("rope_scaling") && v4["rope_scaling"].is_object() ? v4["rope_scaling"] : Json::object();
  if (v4.contains("rope_theta")) rope["rope_theta"] = v4["rope_theta"];
  if (!rope.contains("rope_type")) rope["rope_type"] = "default";
  for (const auto& [key, value] : v4.items()) {
    if (key == "rope_theta" || key == "rope_scaling") {
      if (!out.contains("rope_parameters")) out["rope_parameters"] = rope;
    } else if (key == "torch_dtype") {
      out["dtype"] = value;
    } else {
      out[key] = value;
    }
  }
  return out;
}

// Every field but raw.
void expect_same_fields(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.family, b.family);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.rope.type, b.rope.type);
  EXPECT_EQ(a.rope.theta, b.rope.theta);
  EXPECT_EQ(a.rope.factor, b.rope.factor);
  EXPECT_EQ(a.rope.low_freq_factor, b.rope.low_freq_factor);
  EXPECT_EQ(a.rope.high_freq_factor, b.rope.high_freq_factor);
  EXPECT_EQ(a.rope.original_max_position_embeddings, b.rope.original_max_position_embeddings);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.o_bias, b.o_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.max_window_layers, b.max_window_layers);
  EXPECT_EQ(a.window_layers, b.window_layers);
  EXPECT_EQ(a.hidden_act, b.hidden_act);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.initializer_range, b.initializer_range);
  EXPECT_EQ(a.num_experts, b.num_experts);
  EXPECT_EQ(a.num_experts_per_tok, b.num_experts_per_tok);
  EXPECT_EQ(a.moe_intermediate_size, b.moe_intermediate_size);
  EXPECT_EQ(a.shared_expert_intermediate_size, b.shared_expert_intermediate_size);
  EXPECT_EQ(a.decoder_sparse_step, b.decoder_sparse_step);
  EXPECT_EQ(a.mlp_only_layers, b.mlp_only_layers);
  EXPECT_EQ(a.topk_norm, b.topk_norm);
  EXPECT_EQ(a.router_aux_loss_coef, b.router_aux_loss_coef);
  EXPECT_EQ(a.router_jitter_noise, b.router_jitter_noise);
}

const std::vector<const char*>& released_configs() {
  static const std::vector<const char*> all = {test::kLlama31_8B,   test::kMistral7B,   test::kQwen25_7B,
                                               test::kQwen3_8B,     test::kMixtral8x7B, test::kQwen15MoeA27B,
                                               test::kQwen3_30B_A3B};
  return all;
}

TEST(ModelConfig, FamilyNames) {
  EXPECT_EQ(supported_model_types(), "llama, mistral, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe, dots1");
  ASSERT_EQ(all_families().size(), 8u);
  for (Family f : all_families()) EXPECT_EQ(family_from_model_type(family_model_type(f)), f);
  EXPECT_EQ(family_architecture(Family::kQwen2Moe), "Qwen2MoeForCausalLM");
  EXPECT_FALSE(family_from_model_type("gpt2"));
  EXPECT_TRUE(family_is_moe(Family::kMixtral));
  EXPECT_FALSE(family_is_moe(Family::kQwen3));
}

TEST(ModelConfig, Llama31WithLlama3RopeScaling) {
  ModelConfig c = parse(test::kLlama31_8B);
  EXPECT_EQ(c.family, Family::kLlama);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);  // 4096 / 32
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope.type, "llama3");
  EXPECT_EQ(c.rope.theta, 500000.0);
  EXPECT_EQ(c.rope.factor, 8.0);
  EXPECT_EQ(c.rope.low_freq_factor, 1.0);
  EXPECT_EQ(c.rope.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.dtype, DType::kBF16);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_FALSE(c.sliding_window);
  EXPECT_FALSE(c.is_moe());
  EXPECT_EQ(c.raw["eos_token_id"], 128001);  // kept, not modelled
}

TEST(ModelConfig, MistralSlidingWindowAndDefaults) {
  ModelConfig c = parse(test::kMistral7B);
  EXPECT_EQ(c.family, Family::kMistral);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.sliding_window_for_layer(0), 4096);
  EXPECT_EQ(c.sliding_window_for_layer(31), 4096);
  EXPECT_EQ(c.rope.type, "default");
  EXPECT_EQ(c.rope.theta, 10000.0);

  Json j = parse_json(test::kMistral7B, "config.json", kFile);
  j["sliding_window"] = nullptr;  // Mistral-7B-v0.2+: explicit null = full attention
  EXPECT_FALSE(parse_model_config(j, kFile).sliding_window);
  // Absent keys take MistralConfig's defaults: window 4096, 8 kv heads, rope_theta 1e4, eps 1e-6.
  for (const char* key : {"sliding_window", "num_key_value_heads", "rope_theta", "rms_norm_eps",
                          "max_position_embeddings", "torch_dtype"})
    j.erase(key);
  ModelConfig d = parse_model_config(j, kFile);
  EXPECT_EQ(d.sliding_window, 4096);
  EXPECT_EQ(d.num_key_value_heads, 8);
  EXPECT_EQ(d.rope.theta, 10000.0);
  EXPECT_EQ(d.rms_norm_eps, 1e-6);
  EXPECT_EQ(d.max_position_embeddings, 131072);
  EXPECT_EQ(d.dtype, DType::kF32);  // HF: no dtype -> torch default float32
}

TEST(ModelConfig, Qwen25WithoutSlidingWindow) {
  ModelConfig c = parse(test::kQwen25_7B);
  EXPECT_EQ(c.family, Family::kQwen2);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_TRUE(c.qkv_bias);  // qwen2: q/k/v always biased, o never
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.sliding_window);  // use_sliding_window false: sliding_window 131072 is ignored
  EXPECT_EQ(c.max_window_layers, 28);
  EXPECT_FALSE(c.sliding_window_for_layer(27));
  EXPECT_EQ(c.rope.theta, 1e6);
}

TEST(ModelConfig, Qwen3ExplicitHeadDim) {
  ModelConfig c = parse(test::kQwen3_8B);
  EXPECT_EQ(c.family, Family::kQwen3);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.rope.theta, 1e6);  // an integer in the file
  // Qwen3Config's head_dim default is 128, not hidden/heads: hidden 1024 / 8 heads would give 128 too,
  // so use 16 heads (64 by division) to tell them apart.
  Json j = parse_json(test::kQwen3_8B, "config.json", kFile);
  j.erase("head_dim");
  j["hidden_size"] = 1024;
  j["num_attention_heads"] = 16;
  EXPECT_EQ(parse_model_config(j, kFile).head_dim, 128);
  j["attention_bias"] = true;
  ModelConfig biased = parse_model_config(j, kFile);
  EXPECT_TRUE(biased.qkv_bias);
  EXPECT_TRUE(biased.o_bias);
}

TEST(ModelConfig, Mixtral8x7B) {
  ModelConfig c = parse(test::kMixtral8x7B);
  EXPECT_EQ(c.family, Family::kMixtral);
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.moe_intermediate_size, 14336);
  EXPECT_EQ(c.topk_norm, TopkNorm::kRenormalize);
  EXPECT_EQ(c.router_aux_loss_coef, 0.02);
  EXPECT_EQ(c.router_jitter_noise, 0.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.sliding_window);
  for (int64_t i = 0; i < 32; ++i) EXPECT_TRUE(c.is_moe_layer(i));
  // MixtralConfig defaults: rope_theta 1e6, eps 1e-5, no window.
  Json j = parse_json(test::kMixtral8x7B, "config.json", kFile);
  for (const char* key : {"rope_theta", "rms_norm_eps", "sliding_window", "router_aux_loss_coef"}) j.erase(key);
  ModelConfig d = parse_model_config(j, kFile);
  EXPECT_EQ(d.rope.theta, 1e6);
  EXPECT_EQ(d.rms_norm_eps, 1e-5);
  EXPECT_FALSE(d.sliding_window);
  EXPECT_EQ(d.router_aux_loss_coef, 0.001);
}

TEST(ModelConfig, Qwen15MoeWithSharedExpert) {
  ModelConfig c = parse(test::kQwen15MoeA27B);
  EXPECT_EQ(c.family, Family::kQwen2Moe);
  EXPECT_EQ(c.num_experts, 60);
  EXPECT_EQ(c.num_experts_per_tok, 4);
  EXPECT_EQ(c.moe_intermediate_size, 1408);
  EXPECT_EQ(c.shared_expert_intermediate_size, 5632);
  EXPECT_EQ(c.intermediate_size, 5632);
  EXPECT_EQ(c.topk_norm, TopkNorm::kNone);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.max_window_layers, 21);
  // Qwen2MoeConfig: shared_expert_intermediate_size defaults to 5632 when absent; 0 means none.
  Json j = parse_json(test::kQwen15MoeA27B, "config.json", kFile);
  j["shared_expert_intermediate_size"] = 0;
  EXPECT_EQ(parse_model_config(j, kFile).shared_expert_intermediate_size, 0);
  j.erase("shared_expert_intermediate_size");
  EXPECT_EQ(parse_model_config(j, kFile).shared_expert_intermediate_size, 5632);
  // v5's qkv_bias switches the q/k/v biases off.
  j["qkv_bias"] = false;
  EXPECT_FALSE(parse_model_config(j, kFile).qkv_bias);
}

TEST(ModelConfig, Qwen3MoeNormalisedTopk) {
  ModelConfig c = parse(test::kQwen3_30B_A3B);
  EXPECT_EQ(c.family, Family::kQwen3Moe);
  EXPECT_EQ(c.num_experts, 128);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.moe_intermediate_size, 768);
  EXPECT_EQ(c.shared_expert_intermediate_size, 0);
  EXPECT_EQ(c.topk_norm, TopkNorm::kRenormalize);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.max_window_layers, 0);  // qwen3_moe has no max_window_layers: a window covers every layer
  Json j = parse_json(test::kQwen3_30B_A3B, "config.json", kFile);
  j.erase("norm_topk_prob");  // class default false
  EXPECT_EQ(parse_model_config(j, kFile).topk_norm, TopkNorm::kNone);
  j.erase("head_dim");  // no class field: the modeling code falls back to hidden / heads
  EXPECT_EQ(parse_model_config(j, kFile).head_dim, 2048 / 32);
  j["use_sliding_window"] = true;
  j["sliding_window"] = 512;
  ModelConfig w = parse_model_config(j, kFile);
  EXPECT_EQ(w.sliding_window_for_layer(0), 512);
  EXPECT_EQ(w.sliding_window_for_layer(47), 512);
}

TEST(ModelConfig, V5SpellingParsesLikeV4) {
  for (const char* text : released_configs()) {
    Json v4 = parse_json(text, "config.json", kFile);
    Json v5 = to_v5(v4);
    ASSERT_TRUE(v5.contains("rope_parameters"));
    ASSERT_FALSE(v5.contains("torch_dtype"));
    SCOPED_TRACE(v4["model_type"].get<std::string>());
    expect_same_fields(parse_model_config(v5, kFile), parse_model_config(v4, kFile));
  }
}

TEST(ModelConfig, V5RopeParametersAndDtype) {
  ModelConfig c = parse(R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "torch_dtype": "float32", "dtype": "float16",
    "rope_parameters": {"rope_type": "linear", "factor": 2, "rope_theta": 250000.0}})");
  EXPECT_EQ(c.dtype, DType::kF16);  // dtype wins over torch_dtype, as PreTrainedConfig does
  EXPECT_EQ(c.rope.type, "linear");
  EXPECT_EQ(c.rope.factor, 2.0);
  EXPECT_EQ(c.rope.theta, 250000.0);
  EXPECT_EQ(c.num_key_value_heads, 4);  // llama: absent -> num_attention_heads
  // Old `type` key (transformers < 4.42), and a top-level rope_theta read when the dict has none.
  ModelConfig old = parse(R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "rope_theta": 5000, "rope_scaling": {"type": "linear", "factor": 4.0}})");
  EXPECT_EQ(old.rope.type, "linear");
  EXPECT_EQ(old.rope.factor, 4.0);
  EXPECT_EQ(old.rope.theta, 5000.0);
  // Types upcycle does not model are carried by name.
  ModelConfig yarn = parse(R"({"model_type": "qwen2", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768, "beta_fast": 32}})");
  EXPECT_EQ(yarn.rope.type, "yarn");
  EXPECT_EQ(yarn.rope.factor, 4.0);
  EXPECT_EQ(yarn.rope.original_max_position_embeddings, 32768);
}

TEST(ModelConfig, V5SavedQwen2Moe) {
  // What transformers 5 writes for a Qwen2-MoE: rope_parameters, dtype, qkv_bias, the derived
  // layer_types, and sliding_window 0 when the window is off.
  Json in = parse_json(R"({"architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0, "bos_token_id": null,
    "decoder_sparse_step": 1, "dtype": "bfloat16", "eos_token_id": null, "hidden_act": "silu", "hidden_size": 64,
    "initializer_range": 0.02, "intermediate_size": 128, "layer_types": ["full_attention", "full_attention"],
    "max_position_embeddings": 32768, "max_window_layers": 28, "mlp_only_layers": [], "model_type": "qwen2_moe",
    "moe_intermediate_size": 32, "norm_topk_prob": false, "num_attention_heads": 4, "num_experts": 4,
    "num_experts_per_tok": 2, "num_hidden_layers": 2, "num_key_value_heads": 4, "output_router_logits": false,
    "qkv_bias": true, "rms_norm_eps": 1e-06, "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
    "router_aux_loss_coef": 0.001, "shared_expert_intermediate_size": 64, "sliding_window": 0,
    "tie_word_embeddings": false, "transformers_version": "5.0.0", "use_cache": true, "use_sliding_window": false,
    "vocab_size": 100})",
                       "config.json", kFile);
  ModelConfig c = parse_model_config(in, kFile);
  EXPECT_EQ(c.rope.theta, 1e6);
  EXPECT_EQ(c.dtype, DType::kBF16);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.sliding_window);
  EXPECT_EQ(c.shared_expert_intermediate_size, 64);
  Json out = model_config_to_json(c);
  EXPECT_EQ(out["layer_types"], Json({"full_attention", "full_attention"}));
  EXPECT_EQ(out["qkv_bias"], true);
  EXPECT_EQ(out["rope_scaling"], nullptr);
  EXPECT_EQ(out["rope_theta"], 1e6);
  EXPECT_FALSE(out.contains("rope_parameters"));
  expect_same_fields(parse_model_config(out, kFile), c);
}

TEST(ModelConfig, RoundTripEveryFamilyBothSpellings) {
  for (const char* text : released_configs()) {
    Json v4 = parse_json(text, "config.json", kFile);
    SCOPED_TRACE(v4["model_type"].get<std::string>());
    for (const Json& input : {v4, to_v5(v4)}) {
      ModelConfig first = parse_model_config(input, kFile);
      Json written = model_config_to_json(first);
      EXPECT_FALSE(written.contains("rope_parameters"));
      EXPECT_FALSE(written.contains("dtype"));
      EXPECT_TRUE(written.contains("rope_theta"));
      EXPECT_TRUE(written.contains("torch_dtype"));
      expect_same_fields(parse_model_config(written, kFile), first);
      EXPECT_EQ(model_config_to_json(parse_model_config(written, kFile)), written);  // a fixed point
    }
  }
}

TEST(ModelConfig, RewriteKeepsUnknownKeysAndOrder) {
  Json in = parse_json(test::kQwen15MoeA27B, "config.json", kFile);
  in["quantization_hint"] = {{"bits", 4}};
  Json out = model_config_to_json(parse_model_config(in, kFile));
  // Every input key survives, in the input's order, with its value (modelled values are unchanged
  // here); the keys the writer adds go after them.
  std::vector<std::string> in_keys, out_keys;
  for (const auto& [k, v] : in.items()) in_keys.push_back(k);
  for (const auto& [k, v] : out.items()) out_keys.push_back(k);
  ASSERT_GE(out_keys.size(), in_keys.size());
  EXPECT_EQ(std::vector<std::string>(out_keys.begin(), out_keys.begin() + in_keys.size()), in_keys);
  for (const auto& [k, v] : in.items()) EXPECT_EQ(out[k], v) << k;
  EXPECT_EQ(out["head_dim"], 128);
  EXPECT_EQ(out["rope_scaling"], nullptr);
  EXPECT_EQ(out["mlp_only_layers"], Json::array());
}

TEST(ModelConfig, V5RespelledInPlace) {
  Json in = parse_json(R"({"architectures": ["LlamaForCausalLM"], "dtype": "bfloat16", "hidden_size": 64,
    "custom": "kept", "intermediate_size": 128, "model_type": "llama", "num_attention_heads": 4,
    "num_hidden_layers": 2, "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
    "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    "vocab_size": 100})",
                       "config.json", kFile);
  Json out = model_config_to_json(parse_model_config(in, kFile));
  std::vector<std::string> keys;
  for (const auto& [k, v] : out.items()) keys.push_back(k);
  std::vector<std::string> head(keys.begin(), keys.begin() + 11);
  EXPECT_EQ(head, (std::vector<std::string>{"architectures", "torch_dtype", "hidden_size", "custom",
                                            "intermediate_size", "model_type", "num_attention_heads",
                                            "num_hidden_layers", "rope_scaling", "rope_theta", "vocab_size"}));
  EXPECT_EQ(out["torch_dtype"], "bfloat16");
  EXPECT_EQ(out["rope_theta"], 500000.0);
  EXPECT_EQ(out["rope_scaling"], Json::parse(R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})"));
  EXPECT_EQ(out["custom"], "kept");
  EXPECT_EQ(out["num_key_value_heads"], 4);
  EXPECT_EQ(out["attention_bias"], false);
  EXPECT_EQ(out["mlp_bias"], false);
}

TEST(ModelConfig, OldRopeTypeSpellingKept) {
  ModelConfig c = parse(R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "rope_scaling": {"type": "linear", "factor": 4.0}})");
  EXPECT_EQ(model_config_to_json(c)["rope_scaling"], Json::parse(R"({"type": "linear", "factor": 4.0})"));
  c.rope = RopeConfig{};  // edited in code to default RoPE
  EXPECT_EQ(model_config_to_json(c)["rope_scaling"], nullptr);
}

}  // namespace
}  // namespace upcycle
