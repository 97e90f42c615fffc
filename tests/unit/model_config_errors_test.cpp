// config.json user errors (each message must name the key), validate_model_config's refusals of
// settings a family cannot express, the MoE-layer and sliding-window rules, and default configs
// written to disk and read back.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/model_config.h"
#include "support/hf_configs.h"
#include "support/test_support.h"

namespace upcycle {
namespace {

const std::string kFile = "/models/x/config.json";

Json tiny(const char* model_type) {
  Json j = {{"model_type", model_type}, {"vocab_size", 100},      {"hidden_size", 64},
            {"intermediate_size", 128}, {"num_hidden_layers", 4}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}};
  if (std::string(model_type) == "mixtral") j.update({{"num_local_experts", 4}, {"num_experts_per_tok", 2}});
  if (std::string(model_type).ends_with("_moe"))
    j.update({{"num_experts", 4}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 32}});
  return j;
}

std::string parse_error(const Json& json) {
  try {
    parse_model_config(json, kFile);
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), kFile);
    return e.what();
  }
  return "(parsed)";
}

std::string validate_error(const ModelConfig& c) {
  try {
    validate_model_config(c, kFile);
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), kFile);
    return e.what();
  }
  return "(valid)";
}

Json with(Json j, const std::string& key, Json value) {
  j[key] = std::move(value);
  return j;
}
Json without(Json j, const std::string& key) {
  j.erase(key);
  return j;
}

TEST(ModelConfigErrors, RequiredKeysAndModelType) {
  for (const char* key : {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"})
    EXPECT_EQ(parse_error(without(tiny("qwen2"), key)), "missing required key '" + std::string(key) + "'");
  EXPECT_EQ(parse_error(without(tiny("mixtral"), "num_local_experts")), "missing required key 'num_local_experts'");
  EXPECT_EQ(parse_error(without(tiny("mixtral"), "num_experts_per_tok")), "missing required key 'num_experts_per_tok'");
  EXPECT_EQ(parse_error(without(tiny("qwen3_moe"), "num_experts")), "missing required key 'num_experts'");
  EXPECT_EQ(parse_error(without(tiny("qwen2_moe"), "moe_intermediate_size")),
            "missing required key 'moe_intermediate_size'");
  EXPECT_EQ(parse_error(without(tiny("llama"), "model_type")), "missing required key 'model_type'");
  EXPECT_EQ(parse_error(with(tiny("llama"), "model_type", "gpt2")),
            "unsupported model_type 'gpt2' (supported: llama, mistral, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe, dots1)");
  EXPECT_EQ(parse_error(Json::array()), "config.json must be a JSON object, got []");
}

TEST(ModelConfigErrors, TypesAndRanges) {
  EXPECT_EQ(parse_error(with(tiny("llama"), "hidden_size", "64")), "'hidden_size' must be an integer, got \"64\"");
  EXPECT_EQ(parse_error(with(tiny("llama"), "hidden_size", 64.5)), "'hidden_size' must be an integer, got 64.5");
  EXPECT_EQ(parse_error(with(tiny("llama"), "num_hidden_layers", 0)), "'num_hidden_layers' must be at least 1, got 0");
  EXPECT_EQ(parse_error(with(tiny("llama"), "vocab_size", -3)), "'vocab_size' must be at least 1, got -3");
  EXPECT_EQ(parse_error(with(tiny("llama"), "vocab_size", 1ull << 40)),
            "'vocab_size' (1099511627776) is too large (at most 2147483647)");
  EXPECT_EQ(parse_error(with(tiny("llama"), "vocab_size", 18446744073709551615ull)),
            "'vocab_size' (18446744073709551615) is too large (at most 2147483647)");
  EXPECT_EQ(parse_error(with(tiny("llama"), "tie_word_embeddings", "yes")),
            "'tie_word_embeddings' must be true or false, got \"yes\"");
  EXPECT_EQ(parse_error(with(tiny("qwen2"), "use_sliding_window", 1)),
            "'use_sliding_window' must be true or false, got 1");
  EXPECT_EQ(parse_error(with(tiny("llama"), "rms_norm_eps", "1e-5")), "'rms_norm_eps' must be a number, got \"1e-5\"");
  EXPECT_EQ(parse_error(with(tiny("llama"), "rms_norm_eps", -1e-5)), "'rms_norm_eps' must be at least 0.0, got -1e-05");
  EXPECT_EQ(parse_error(with(tiny("llama"), "model_type", 7)), "'model_type' must be a string, got 7");
  EXPECT_EQ(parse_error(with(tiny("llama"), "torch_dtype", "float8_e4m3fn")),
            "unsupported 'torch_dtype' 'float8_e4m3fn' (supported: float32, float16, bfloat16)");
  EXPECT_EQ(parse_error(with(tiny("llama"), "dtype", "int8")),
            "unsupported 'dtype' 'int8' (supported: float32, float16, bfloat16)");
}

TEST(ModelConfigErrors, ShapeConsistency) {
  Json j = with(with(tiny("llama"), "num_attention_heads", 12), "hidden_size", 100);
  j.erase("num_key_value_heads");
  EXPECT_EQ(parse_error(j), "'num_attention_heads' (12) must divide 'hidden_size' (100) when 'head_dim' is absent");
  EXPECT_EQ(parse_error(with(j, "head_dim", 8)), "(parsed)");  // explicit head_dim: no divisibility needed
  EXPECT_EQ(parse_error(with(tiny("llama"), "num_key_value_heads", 3)),
            "'num_key_value_heads' (3) must divide 'num_attention_heads' (4)");
  // qwen2's class default for an absent num_key_value_heads is 32, which 4 heads cannot use.
  EXPECT_EQ(parse_error(without(tiny("qwen2"), "num_key_value_heads")),
            "'num_key_value_heads' (32, the qwen2 default for an absent key) must divide 'num_attention_heads' (4)");
  EXPECT_EQ(parse_error(with(tiny("mixtral"), "num_experts_per_tok", 5)),
            "'num_experts_per_tok' (5) must not exceed 'num_local_experts' (4)");
  EXPECT_EQ(parse_error(with(tiny("qwen3_moe"), "num_experts_per_tok", 5)),
            "'num_experts_per_tok' (5) must not exceed 'num_experts' (4)");
  EXPECT_EQ(parse_error(with(tiny("qwen2_moe"), "mlp_only_layers", {0, 4})),
            "'mlp_only_layers' entry 4 is out of range (num_hidden_layers is 4)");
  EXPECT_EQ(parse_error(with(tiny("qwen2_moe"), "mlp_only_layers", "0")),
            "'mlp_only_layers' must be a list of layer indices, got \"0\"");
  EXPECT_EQ(parse_error(with(tiny("qwen2_moe"), "decoder_sparse_step", 0)),
            "'decoder_sparse_step' must be at least 1, got 0");
  EXPECT_EQ(parse_error(with(tiny("qwen3_moe"), "num_experts", 0)), "'num_experts' must be at least 1, got 0");
}

TEST(ModelConfigErrors, UnsupportedFeatures) {
  EXPECT_EQ(parse_error(with(tiny("llama"), "hidden_act", "gelu")),
            "'hidden_act' 'gelu' is not supported (upcycle implements SwiGLU: \"silu\" only)");
  EXPECT_EQ(parse_error(with(tiny("llama"), "mlp_bias", true)),
            "'mlp_bias' true is not supported (upcycle's FFN has no biases)");
  EXPECT_EQ(parse_error(with(tiny("llama"), "mlp_bias", false)), "(parsed)");
  EXPECT_EQ(parse_error(with(tiny("llama"), "rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}})),
            "'rope_scaling' of type 'llama3' needs 'low_freq_factor'");
  EXPECT_EQ(parse_error(with(tiny("llama"), "rope_parameters", {{"rope_type", "linear"}})),
            "'rope_parameters' of type 'linear' needs 'factor'");
  EXPECT_EQ(parse_error(with(tiny("llama"), "rope_scaling", {{"rope_type", "linear"}, {"factor", -2}})),
            "'factor' in 'rope_scaling' must be at least 0.0, got -2");
  EXPECT_EQ(parse_error(with(tiny("llama"), "rope_scaling", "linear")),
            "'rope_scaling' must be an object or null, got \"linear\"");
  EXPECT_EQ(parse_error(with(tiny("llama"), "rope_parameters", {{"full_attention", {{"rope_type", "default"}}}})),
            "'rope_parameters' holds per-layer-type entries ('full_attention'), which upcycle does not support");
  EXPECT_EQ(parse_error(with(tiny("llama"), "rope_theta", 0)), "'rope_theta' must be positive");
  Json llama3 = {{"rope_type", "llama3"},
                 {"factor", 8.0},
                 {"low_freq_factor", 4.0},
                 {"high_freq_factor", 4.0},
                 {"original_max_position_embeddings", 8192}};
  EXPECT_EQ(parse_error(with(tiny("llama"), "rope_scaling", llama3)),
            "'high_freq_factor' (4.0) in 'rope_scaling' must exceed 'low_freq_factor' (4.0)");
}

TEST(ModelConfigErrors, LayerTypesMustBeAListOfKnownTypes) {
  Json j = with(with(with(tiny("qwen2"), "use_sliding_window", true), "sliding_window", 64), "max_window_layers", 2);
  j["layer_types"] = {"full_attention"};
  EXPECT_EQ(parse_error(j), "'layer_types' must be a list of 4 strings, got [\"full_attention\"]");
  j["layer_types"] = {"full_attention", "full_attention", "chunked_attention", "full_attention"};
  EXPECT_EQ(parse_error(j),
            "'layer_types' entry 2 must be \"full_attention\" or \"sliding_attention\", got \"chunked_attention\"");
  // qwen2_moe without layer_types: transformers 5 windows the even layers below max_window_layers
  // (Qwen2MoeConfig), not those from it on, so the file is ambiguous and refused; spelled out, it runs.
  Json moe = with(with(with(tiny("qwen2_moe"), "use_sliding_window", true), "sliding_window", 64), "max_window_layers", 2);
  EXPECT_EQ(parse_error(moe),
            "qwen2_moe with 'use_sliding_window' true needs 'layer_types': transformers 5 derives the windowed layers "
            "differently from qwen2 ('max_window_layers' alone is ambiguous)");
  EXPECT_EQ(parse_error(with(moe, "layer_types", nullptr)), parse_error(moe));
  moe["layer_types"] = {"full_attention", "full_attention", "sliding_attention", "sliding_attention"};
  EXPECT_EQ(parse_error(moe), "(parsed)");
  EXPECT_EQ(parse_error(with(moe, "use_sliding_window", false)), "(parsed)");
}

// Regression (issue 14): transformers 5.23's Qwen2MoeConfig derives "sliding on even layers below
// max_window_layers" and save_pretrained writes that list; upcycle refused it as inexpressible. The
// list is what transformers follows, so it is kept as the pattern and written back unchanged.
TEST(ModelConfigRules, LayerTypesPatternOutsideTheRuleIsKept) {
  Json j = with(with(with(tiny("qwen2_moe"), "use_sliding_window", true), "sliding_window", 64), "max_window_layers", 2);
  j["layer_types"] = {"sliding_attention", "full_attention", "full_attention", "full_attention"};  // v5's derivation
  ModelConfig c = parse_model_config(j, kFile);
  EXPECT_EQ(c.window_layers, (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(c.sliding_window_for_layer(0), 64);
  for (int64_t l : {1, 2, 3}) EXPECT_FALSE(c.sliding_window_for_layer(l)) << l;
  const Json out = model_config_to_json(c);
  EXPECT_EQ(out["layer_types"], j["layer_types"]);
  EXPECT_EQ(parse_model_config(out, kFile).window_layers, c.window_layers);
  // A list that is the rule stores no pattern; without a window the list changes nothing.
  j["layer_types"] = {"full_attention", "full_attention", "sliding_attention", "sliding_attention"};
  EXPECT_TRUE(parse_model_config(j, kFile).window_layers.empty());
  j["layer_types"] = {"sliding_attention", "full_attention", "full_attention", "full_attention"};
  ModelConfig off = parse_model_config(with(j, "use_sliding_window", false), kFile);
  EXPECT_TRUE(off.window_layers.empty());
  EXPECT_FALSE(off.sliding_window_for_layer(0));
  // Families without layer_types cannot hold a pattern.
  ModelConfig q3moe = parse_model_config(tiny("qwen3_moe"), kFile);
  q3moe.sliding_window = 64;
  q3moe.window_layers = {true, false, false, false};
  EXPECT_EQ(validate_error(q3moe),
            "qwen3_moe cannot express a per-layer window pattern ('layer_types'); qwen2, qwen3, qwen2_moe and dots1 can");
  c.window_layers.pop_back();
  EXPECT_EQ(validate_error(c), "the window pattern ('layer_types') must have one entry per layer (4), got 3");
}

// Regression (issue 14): transformers 5 aliases num_experts <-> num_local_experts in Mixtral and
// Qwen3-MoE, and its Qwen3MoeConfig saves num_local_experts, which upcycle reported as missing
// 'num_experts'. Either spelling loads; with both, the non-field spelling wins, as in transformers.
TEST(ModelConfigRules, ExpertCountUnderEitherSpelling) {
  Json q3 = without(tiny("qwen3_moe"), "num_experts");
  EXPECT_EQ(parse_model_config(with(q3, "num_local_experts", 8), kFile).num_experts, 8);
  EXPECT_EQ(parse_model_config(with(with(q3, "num_local_experts", 8), "num_experts", 4), kFile).num_experts, 8);
  EXPECT_EQ(parse_error(with(with(q3, "num_local_experts", 1), "num_experts", 4)),
            "'num_experts_per_tok' (2) must not exceed 'num_local_experts' (1)");
  Json mixtral = without(tiny("mixtral"), "num_local_experts");
  EXPECT_EQ(parse_model_config(with(mixtral, "num_experts", 8), kFile).num_experts, 8);
  EXPECT_EQ(parse_model_config(with(with(mixtral, "num_experts", 8), "num_local_experts", 4), kFile).num_experts, 8);
  // qwen2_moe has no alias: transformers ignores num_local_experts there.
  EXPECT_EQ(parse_model_config(with(tiny("qwen2_moe"), "num_local_experts", 8), kFile).num_experts, 4);
  // Written back in the family's own (v4) spelling only.
  const Json out = model_config_to_json(parse_model_config(with(q3, "num_local_experts", 8), kFile));
  EXPECT_EQ(out["num_experts"], 8);
  EXPECT_FALSE(out.contains("num_local_experts"));
}

TEST(ModelConfigErrors, ValidateRefusesWhatAFamilyCannotExpress) {
  ModelConfig mixtral = parse_model_config(tiny("mixtral"), kFile);
  EXPECT_EQ(validate_error(mixtral), "(valid)");
  ModelConfig c = mixtral;
  c.topk_norm = TopkNorm::kNone;
  EXPECT_EQ(validate_error(c),
            "mixtral always renormalises the top-k router probabilities and cannot express 'norm_topk_prob' false "
            "(qwen2_moe or qwen3_moe can)");
  EXPECT_THROW(model_config_to_json(c), Error);
  test::ScratchDir dir;
  EXPECT_THROW(write_model_config(dir.path(), c), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "config.json"));
  c = mixtral;
  c.mlp_only_layers = {0};
  EXPECT_EQ(validate_error(c),
            "mixtral makes every layer MoE and cannot express dense layers ('mlp_only_layers', "
            "'decoder_sparse_step') (qwen2_moe or qwen3_moe can)");
  c = mixtral;
  c.moe_intermediate_size = 32;
  EXPECT_EQ(validate_error(c),
            "mixtral experts are 'intermediate_size' (128) wide; expert width 32 needs qwen2_moe or qwen3_moe");
  c = mixtral;
  c.shared_expert_intermediate_size = 64;
  EXPECT_EQ(validate_error(c), "mixtral has no shared expert ('shared_expert_intermediate_size'); use qwen2_moe or dots1");

  ModelConfig llama = parse_model_config(tiny("llama"), kFile);
  c = llama;
  c.qkv_bias = true;
  EXPECT_EQ(validate_error(c),
            "'attention_bias' sets q/k/v_proj and o_proj biases together in llama; q/k/v-only biases need qwen2 or "
            "qwen2_moe");
  c = llama;
  c.num_experts = 8;
  EXPECT_EQ(validate_error(c), "llama is a dense family; MoE needs mixtral, qwen2_moe or qwen3_moe");
  c = llama;
  c.sliding_window = 128;
  EXPECT_EQ(validate_error(c), "llama has no sliding-window attention ('sliding_window'); use mistral or qwen2");
  c = llama;
  c.dtype = DType::kI8;
  EXPECT_EQ(validate_error(c), "'torch_dtype' cannot be I8 (supported: float32, float16, bfloat16)");
  c = llama;
  c.head_dim = 0;
  EXPECT_EQ(validate_error(c), "'head_dim' must be between 1 and 2147483647, got 0");
  c = parse_model_config(tiny("qwen2"), kFile);
  c.qkv_bias = false;
  EXPECT_EQ(validate_error(c), "qwen2 always has q/k/v_proj biases; bias-free attention needs llama or qwen3");
  c = parse_model_config(tiny("qwen3_moe"), kFile);
  c.qk_norm = false;
  EXPECT_EQ(validate_error(c), "qwen3_moe always has q_norm/k_norm");
  c = parse_model_config(tiny("qwen3_moe"), kFile);
  c.router_jitter_noise = 0.01;
  EXPECT_EQ(validate_error(c), "'router_jitter_noise' is a mixtral key; qwen3_moe cannot express it");
}

TEST(ModelConfigRules, MoeLayers) {
  ModelConfig c =
      parse_model_config(with(with(tiny("qwen2_moe"), "num_hidden_layers", 6), "decoder_sparse_step", 2), kFile);
  std::vector<int64_t> moe;
  for (int64_t i = 0; i < 6; ++i)
    if (c.is_moe_layer(i)) moe.push_back(i);
  EXPECT_EQ(moe, (std::vector<int64_t>{1, 3, 5}));  // (i + 1) % 2 == 0
  c.mlp_only_layers = {3};
  moe.clear();
  for (int64_t i = 0; i < 6; ++i)
    if (c.is_moe_layer(i)) moe.push_back(i);
  EXPECT_EQ(moe, (std::vector<int64_t>{1, 5}));
  ModelConfig q3 = parse_model_config(with(tiny("qwen3_moe"), "mlp_only_layers", {0, 2}), kFile);
  EXPECT_FALSE(q3.is_moe_layer(0));
  EXPECT_TRUE(q3.is_moe_layer(1));
  EXPECT_FALSE(q3.is_moe_layer(2));
  EXPECT_TRUE(q3.is_moe_layer(3));
  ModelConfig dense = parse_model_config(tiny("qwen3"), kFile);
  EXPECT_FALSE(dense.is_moe_layer(0));
}

TEST(ModelConfigRules, SlidingWindowPerLayer) {
  Json q = with(with(with(tiny("qwen2"), "use_sliding_window", true), "sliding_window", 64), "max_window_layers", 2);
  ModelConfig c = parse_model_config(q, kFile);
  EXPECT_FALSE(c.sliding_window_for_layer(0));
  EXPECT_FALSE(c.sliding_window_for_layer(1));
  EXPECT_EQ(c.sliding_window_for_layer(2), 64);
  EXPECT_EQ(c.sliding_window_for_layer(3), 64);
  // The written file spells the pattern out (v5's qwen2_moe would otherwise derive another one).
  Json out = model_config_to_json(c);
  EXPECT_EQ(out["layer_types"], Json({"full_attention", "full_attention", "sliding_attention", "sliding_attention"}));
  EXPECT_EQ(out["use_sliding_window"], true);
  // use_sliding_window false: no window anywhere, whatever sliding_window says.
  ModelConfig off = parse_model_config(with(q, "use_sliding_window", false), kFile);
  EXPECT_FALSE(off.sliding_window);
  EXPECT_FALSE(off.sliding_window_for_layer(3));
  // v5's Qwen2MoeConfig saves sliding_window 0 when the window is off: not an error.
  Json v5_moe = with(with(tiny("qwen2_moe"), "use_sliding_window", false), "sliding_window", 0);
  EXPECT_FALSE(parse_model_config(v5_moe, kFile).sliding_window);
  EXPECT_EQ(model_config_to_json(parse_model_config(v5_moe, kFile))["sliding_window"], 0);
  ModelConfig mistral = parse_model_config(with(tiny("mistral"), "sliding_window", 16), kFile);
  EXPECT_EQ(mistral.sliding_window_for_layer(0), 16);
  ModelConfig llama = parse_model_config(with(tiny("llama"), "sliding_window", 16), kFile);  // llama ignores it
  EXPECT_FALSE(llama.sliding_window_for_layer(0));
}

TEST(ModelConfigRules, FamilyChangeDropsForeignKeys) {
  // A mixtral config made from a llama one must not keep llama's attention_bias/mlp_bias.
  ModelConfig c = parse_model_config(with(tiny("llama"), "pretraining_tp", 1), kFile);
  c.family = Family::kMixtral;
  c.num_experts = 4;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = c.intermediate_size;
  c.topk_norm = TopkNorm::kRenormalize;
  c.rope.theta = 1e6;
  Json out = model_config_to_json(c);
  EXPECT_FALSE(out.contains("attention_bias"));
  EXPECT_FALSE(out.contains("mlp_bias"));
  EXPECT_EQ(out["pretraining_tp"], 1);  // not modelled by any family: kept
  EXPECT_EQ(out["architectures"], Json({"MixtralForCausalLM"}));
  EXPECT_EQ(out["num_local_experts"], 4);
  EXPECT_FALSE(out.contains("num_experts"));
  ModelConfig back = parse_model_config(out, kFile);
  EXPECT_EQ(back.family, Family::kMixtral);
  EXPECT_EQ(back.num_experts, 4);
}

TEST(ModelConfigDefaults, WriteReadBackEveryFamily) {
  for (Family f : all_families()) {
    SCOPED_TRACE(std::string(family_model_type(f)));
    ModelConfig c = default_model_config(f);
    EXPECT_EQ(c.vocab_size, 0);  // shapes are the caller's
    c.vocab_size = 100;
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    if (family_is_moe(f)) {
      c.num_experts = 4;
      c.num_experts_per_tok = 2;
      c.moe_intermediate_size = f == Family::kMixtral ? 128 : 32;
      if (f == Family::kDots1) c.shared_expert_intermediate_size = 64;  // n_shared_experts 2
    }
    test::ScratchDir dir;
    write_model_config(dir.path(), c);
    const Json written = read_json_file(dir / "config.json", "config.json");
    for (const char* key : {"bos_token_id", "eos_token_id", "transformers_version", "use_cache", "attention_dropout",
                            "max_position_embeddings", "initializer_range", "rms_norm_eps", "rope_theta"})
      EXPECT_TRUE(written.contains(key)) << key;
    // HF saves keys sorted; the default skeleton does too.
    std::vector<std::string> keys;
    for (const auto& [k, v] : written.items()) keys.push_back(k);
    EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
    ModelConfig back = read_model_config(dir.path());
    EXPECT_EQ(back.family, f);
    EXPECT_EQ(back.rms_norm_eps, c.rms_norm_eps);
    EXPECT_EQ(back.rope.theta, c.rope.theta);
    EXPECT_EQ(back.sliding_window, c.sliding_window);
    EXPECT_EQ(back.qkv_bias, c.qkv_bias);
    EXPECT_EQ(back.topk_norm, c.topk_norm);
    EXPECT_EQ(back.dtype, DType::kBF16);
    EXPECT_EQ(back.shared_expert_intermediate_size, c.shared_expert_intermediate_size);
    EXPECT_EQ(back.router_scoring, c.router_scoring);
  }
  EXPECT_EQ(default_model_config(Family::kDots1).router_scoring, RouterScoring::kSigmoid);
  EXPECT_EQ(default_model_config(Family::kMixtral).rope.theta, 1e6);
  EXPECT_EQ(default_model_config(Family::kMixtral).rms_norm_eps, 1e-5);
  EXPECT_EQ(default_model_config(Family::kMixtral).topk_norm, TopkNorm::kRenormalize);
  EXPECT_EQ(default_model_config(Family::kQwen2Moe).topk_norm, TopkNorm::kNone);
  EXPECT_EQ(default_model_config(Family::kMistral).sliding_window, 4096);
  EXPECT_EQ(default_model_config(Family::kLlama).raw["bos_token_id"], 1);
  EXPECT_EQ(default_model_config(Family::kQwen3).raw["eos_token_id"], nullptr);
}

TEST(ModelConfigFiles, NumberOverflowIsAJsonError) {
  // Fuzz finding: nlohmann reports 1e8192 as out_of_range, which parse_json must turn into an Error.
  try {
    parse_json(R"({"rms_norm_eps": 1e8192})", "config.json", kFile);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "config.json is not valid JSON: number overflow parsing '1e8192'");
    EXPECT_EQ(e.file(), kFile);
  }
}

TEST(ModelConfigFiles, ReadErrorsNameTheFile) {
  test::ScratchDir dir;
  try {
    read_model_config(dir.path());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), dir.path().string());
    EXPECT_NE(std::string(e.what()).find("no config.json"), std::string::npos) << e.what();
  }
  test::write_bytes(dir / "config.json", "{\"model_type\": \"llama\",");
  try {
    read_model_config(dir.path());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace upcycle
