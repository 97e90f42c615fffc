// config.json -> ModelConfig, following what transformers builds from the same file: absent keys take
// the family class's default (model_family.cpp), v5 spellings (`rope_parameters`, `dtype`) are read
// as v5 reads them, and anything the engine cannot run (mlp_bias, non-SiLU FFN, a per-layer window
// pattern the rule cannot express) is refused here rather than silently changed.
// A config.json without a dtype key gets F32: HF's config default is None, which from_pretrained
// loads as torch's default float32.
#include "io/model_config.h"

#include <algorithm>

#include "core/error.h"
#include "io/config_reader.h"
#include "io/model_family.h"
#include "io/model_limits.h"

namespace upcycle {
namespace {

// num_key_value_heads and head_dim, with the family defaults for absent keys.
void parse_attention_shape(const ConfigReader& in, const FamilyInfo& info, ModelConfig& c) {
  if (in.has("head_dim")) {
    c.head_dim = in.int_or("head_dim", 0, 1);
  } else if (info.default_head_dim > 0) {
    c.head_dim = info.default_head_dim;
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      in.fail("'num_attention_heads' (" + std::to_string(c.num_attention_heads) + ") must divide 'hidden_size' (" +
              std::to_string(c.hidden_size) + ") when 'head_dim' is absent");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  const bool kv_given = in.has("num_key_value_heads");
  const int64_t kv_default = info.default_kv_heads > 0 ? info.default_kv_heads : c.num_attention_heads;
  c.num_key_value_heads = in.int_or("num_key_value_heads", kv_default, 1);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    std::string note = kv_given ? "" : ", the " + std::string(info.model_type) + " default for an absent key";
    in.fail("'num_key_value_heads' (" + std::to_string(c.num_key_value_heads) + note +
            ") must divide 'num_attention_heads' (" + std::to_string(c.num_attention_heads) + ")");
  }
}

// `dtype` (v5) wins over `torch_dtype` (v4) when both are present, as PreTrainedConfig does.
DType parse_dtype(const ConfigReader& in) {
  const char* key = in.has("dtype") ? "dtype" : "torch_dtype";
  if (!in.has(key)) return DType::kF32;
  std::string name = in.string_or(key, "");
  auto dtype = dtype_from_torch_name(name);
  if (!dtype) in.fail("unsupported " + quoted(key) + " '" + name + "' (supported: float32, float16, bfloat16)");
  return *dtype;
}

double rope_number(const ConfigReader& in, const RopeDict& rope, std::string_view key, double fallback, bool required,
                   const std::string& type) {
  auto it = rope.dict->find(key);
  if (it == rope.dict->end() || it->is_null()) {
    if (required) in.fail(quoted(rope.key) + " of type '" + type + "' needs " + quoted(key));
    return fallback;
  }
  double value = in.as_number(*it, quoted(key) + " in " + quoted(rope.key), 0.0);
  if (value <= 0.0) in.fail(quoted(key) + " in " + quoted(rope.key) + " must be positive, got " + short_json(*it));
  return value;
}

// RoPE as transformers v5 standardises it: type from `rope_type` or the old `type`, theta from the
// dict's `rope_theta`, else the top-level `rope_theta`, else the family default.
RopeConfig parse_rope(const ConfigReader& in, const FamilyInfo& info) {
  RopeConfig rope;
  rope.theta = in.number_or("rope_theta", info.rope_theta, 0.0);
  RopeDict source = find_rope_dict(in);
  if (source.dict) {
    for (const auto& [name, value] : source.dict->items())
      if (value.is_object())
        in.fail(quoted(source.key) + " holds per-layer-type entries ('" + name + "'), which upcycle does not support");
    for (const char* type_key : {"rope_type", "type"}) {
      auto it = source.dict->find(type_key);
      if (it == source.dict->end() || it->is_null()) continue;
      if (!it->is_string() || it->get<std::string>().empty())
        in.fail(quoted(type_key) + " in " + quoted(source.key) + " must be a non-empty string, got " + short_json(*it));
      rope.type = it->get<std::string>();
      break;
    }
    rope.theta = rope_number(in, source, "rope_theta", rope.theta, false, rope.type);
    const bool scaled = rope.type == "linear" || rope.type == "llama3";
    rope.factor = rope_number(in, source, "factor", 1.0, scaled, rope.type);
    const bool llama3 = rope.type == "llama3";
    rope.low_freq_factor = rope_number(in, source, "low_freq_factor", 1.0, llama3, rope.type);
    rope.high_freq_factor = rope_number(in, source, "high_freq_factor", 4.0, llama3, rope.type);
    auto it = source.dict->find("original_max_position_embeddings");
    if (it != source.dict->end() && !it->is_null())
      rope.original_max_position_embeddings =
          in.as_int(*it, "'original_max_position_embeddings' in " + quoted(source.key), 1);
    else if (llama3)
      in.fail(quoted(source.key) + " of type 'llama3' needs 'original_max_position_embeddings'");
  }
  if (rope.theta <= 0.0) in.fail("'rope_theta' must be positive");
  return rope;
}

void parse_biases(const ConfigReader& in, const FamilyInfo& info, ModelConfig& c) {
  switch (info.bias) {
    case BiasRule::kNone:
      break;
    case BiasRule::kAttentionBias:
      c.qkv_bias = c.o_bias = in.bool_or("attention_bias", false);
      break;
    case BiasRule::kQkvAlways:
      c.qkv_bias = true;
      break;
    case BiasRule::kQkvBiasKey:
      c.qkv_bias = in.bool_or("qkv_bias", true);
      break;
  }
  if (c.family == Family::kLlama && in.bool_or("mlp_bias", false))
    in.fail("'mlp_bias' true is not supported (upcycle's FFN has no biases)");
  c.qk_norm = info.qk_norm;
}

// A v5 file (and v4.5x qwen2/qwen3) may spell the pattern out in `layer_types`, which transformers 5
// follows over use_sliding_window/max_window_layers. A pattern the max_window_layers rule cannot
// express (v5's Qwen2-MoE derives "even layers below max_window_layers") is kept in window_layers.
void read_layer_types(const ConfigReader& in, ModelConfig& c) {
  const Json* types = in.find("layer_types");
  if (!types) return;
  if (!types->is_array() || static_cast<int64_t>(types->size()) != c.num_hidden_layers)
    in.fail("'layer_types' must be a list of " + std::to_string(c.num_hidden_layers) + " strings, got " +
            short_json(*types));
  std::vector<bool> sliding;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const Json& t = (*types)[static_cast<size_t>(i)];
    if (t != "sliding_attention" && t != "full_attention")
      in.fail("'layer_types' entry " + std::to_string(i) +
              " must be \"full_attention\" or \"sliding_attention\", got " + short_json(t));
    sliding.push_back(t == "sliding_attention");
  }
  if (!c.sliding_window) return;  // no window: every layer attends fully, whatever the list says
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    if (sliding[static_cast<size_t>(i)] != c.sliding_window_for_layer(i).has_value()) {
      c.window_layers = std::move(sliding);
      return;
    }
}

void parse_sliding(const ConfigReader& in, const Json& json, const FamilyInfo& info, ModelConfig& c) {
  // `sliding_window: null` means "no window"; an absent key means the class default.
  const bool absent = !json.contains("sliding_window");
  auto window = [&](int64_t fallback) -> std::optional<int64_t> {
    if (in.has("sliding_window")) return in.int_or("sliding_window", 0, 1);
    if (absent && fallback > 0) return fallback;
    return std::nullopt;
  };
  switch (info.sliding) {
    case SlidingRule::kNone:
      break;
    case SlidingRule::kAllLayers:
      c.sliding_window = window(info.default_sliding_window);
      break;
    case SlidingRule::kQwenFromLayer:
    case SlidingRule::kQwenAllLayers: {
      // Qwen classes: sliding_window (default 4096) counts only when use_sliding_window is true, and is
      // not read otherwise (v5's qwen2_moe saves 0 there when the window is off).
      if (in.bool_or("use_sliding_window", false)) c.sliding_window = window(4096);
      if (info.sliding == SlidingRule::kQwenFromLayer) {
        c.max_window_layers = in.int_or("max_window_layers", 28, 0);
        // Without layer_types transformers 5 windows qwen2_moe's even layers below max_window_layers
        // (Qwen2MoeConfig.__post_init__), where the rule here (and qwen2/qwen3) windows layers at or
        // above it: refused rather than run differently. upcycle's own files spell layer_types out.
        if (c.family == Family::kQwen2Moe && c.sliding_window && !in.has("layer_types"))
          in.fail("qwen2_moe with 'use_sliding_window' true needs 'layer_types': transformers 5 derives the "
                  "windowed layers differently from qwen2 ('max_window_layers' alone is ambiguous)");
        read_layer_types(in, c);
      }
      break;
    }
    case SlidingRule::kFromLayer: {
      // dots1: no switch; the window (class default 4096) covers layers >= max_window_layers (default
      // 62), so a small model with the defaults has none: then it is recorded as no window at all.
      c.sliding_window = window(info.default_sliding_window);
      c.max_window_layers = in.int_or("max_window_layers", 62, 0);
      read_layer_types(in, c);
      bool any = false;
      for (int64_t i = 0; i < c.num_hidden_layers; ++i) any = any || c.sliding_window_for_layer(i).has_value();
      if (!any) c.sliding_window.reset(), c.window_layers.clear();
      break;
    }
  }
}

std::vector<int64_t> parse_mlp_only_layers(const ConfigReader& in, int64_t num_layers) {
  std::vector<int64_t> layers;
  const Json* list = in.find("mlp_only_layers");
  if (!list) return layers;
  if (!list->is_array()) in.fail("'mlp_only_layers' must be a list of layer indices, got " + short_json(*list));
  for (const Json& entry : *list) {
    int64_t layer = in.as_int(entry, "'mlp_only_layers' entry", 0);
    if (layer >= num_layers)
      in.fail("'mlp_only_layers' entry " + std::to_string(layer) + " is out of range (num_hidden_layers is " +
              std::to_string(num_layers) + ")");
    layers.push_back(layer);
  }
  return layers;
}

// The key holding the expert count. transformers 5 aliases num_experts and num_local_experts
// (`attribute_map`) in Mixtral and Qwen3-MoE, and v5's Qwen3MoeConfig saves `num_local_experts`;
// either spelling loads. With both, the one that is not the class's field wins, as in transformers:
// it is assigned after the fields. Qwen2-MoE has no alias (num_local_experts there is ignored).
std::string_view experts_key_read(const ConfigReader& in, Family family) {
  const std::string_view field = experts_key(family);
  if (family == Family::kQwen2Moe) return field;
  const std::string_view alias = family == Family::kMixtral ? "num_experts" : "num_local_experts";  // dots1 too
  return in.has(alias) ? alias : field;
}

// Dots1Config: DeepSeek-V3 routing. n_shared_experts has no usable default (None breaks the class), so
// it is required; the group and dense-prefix keys default as in the class. Validation checks the rest.
void parse_dots1_moe(const ConfigReader& in, ModelConfig& c) {
  c.router_scoring = RouterScoring::kSigmoid;
  c.router_aux_loss_coef = 0.0;  // no such key: DeepSeek-V3 balances with e_score_correction_bias
  c.shared_expert_intermediate_size = in.required_int("n_shared_experts", 1) * c.moe_intermediate_size;
  c.n_group = in.int_or("n_group", 1, 1);
  c.topk_group = in.int_or("topk_group", 1, 1);
  c.routed_scaling_factor = in.number_or("routed_scaling_factor", 1.0, 0.0);
  c.first_k_dense_replace = in.int_or("first_k_dense_replace", 0, 0);
  c.topk_norm = in.bool_or("norm_topk_prob", false) ? TopkNorm::kRenormalize : TopkNorm::kNone;
  // DeepSeek-V3's own keys, which transformers' Dots1 ignores and vLLM's dots1 obeys: any other value
  // would make the two engines compute different models, so only DeepSeek-V3's values are accepted.
  if (in.has("scoring_func") && in.string_or("scoring_func", "") != "sigmoid")
    in.fail("'scoring_func' is '" + in.string_or("scoring_func", "") + "': dots1 scores experts with a sigmoid");
  if (in.has("topk_method") && in.string_or("topk_method", "") != "noaux_tc")
    in.fail("'topk_method' is '" + in.string_or("topk_method", "") +
            "': dots1 selects with e_score_correction_bias ('noaux_tc')");
  if (in.has("moe_layer_freq") && in.int_or("moe_layer_freq", 1, 1) != 1)
    in.fail("'moe_layer_freq' must be 1: transformers' Dots1 makes every layer from first_k_dense_replace on MoE");
  c.deepseek_routing_keys = in.has("scoring_func") && in.has("topk_method") && in.has("moe_layer_freq");
}

void parse_moe(const ConfigReader& in, ModelConfig& c) {
  const std::string_view key = experts_key_read(in, c.family);
  c.num_experts = in.required_int(key, 1);
  c.num_experts_per_tok = in.required_int("num_experts_per_tok", 1);
  if (c.num_experts_per_tok > c.num_experts)
    in.fail("'num_experts_per_tok' (" + std::to_string(c.num_experts_per_tok) + ") must not exceed " +
            quoted(key) + " (" + std::to_string(c.num_experts) + ")");
  c.router_aux_loss_coef = in.number_or("router_aux_loss_coef", 0.001, 0.0);
  if (c.family == Family::kMixtral) {
    // Mixtral: every layer is MoE, experts are intermediate_size wide, top-k is always renormalised.
    c.moe_intermediate_size = c.intermediate_size;
    c.topk_norm = TopkNorm::kRenormalize;
    c.router_jitter_noise = in.number_or("router_jitter_noise", 0.0, 0.0);
    return;
  }
  c.moe_intermediate_size = in.required_int("moe_intermediate_size", 1);
  if (c.family == Family::kDots1) return parse_dots1_moe(in, c);
  if (c.family == Family::kQwen2Moe)  // class default 5632 when absent; 0 = no shared expert
    c.shared_expert_intermediate_size = in.int_or("shared_expert_intermediate_size", 5632, 0);
  c.decoder_sparse_step = in.int_or("decoder_sparse_step", 1, 1);
  c.mlp_only_layers = parse_mlp_only_layers(in, c.num_hidden_layers);
  c.topk_norm = in.bool_or("norm_topk_prob", false) ? TopkNorm::kRenormalize : TopkNorm::kNone;
}

ModelConfig parse_checked(const Json& json, const std::string& file) {
  ConfigReader in(json, file);
  if (!json.is_object()) in.fail("config.json must be a JSON object, got " + short_json(json));
  if (!in.has("model_type")) in.fail("missing required key 'model_type'");
  const std::string model_type = in.string_or("model_type", "");
  auto family = family_from_model_type(model_type);
  if (!family) in.fail("unsupported model_type '" + model_type + "' (supported: " + supported_model_types() + ")");
  const FamilyInfo& info = family_info(*family);

  ModelConfig c;
  c.family = *family;
  c.vocab_size = in.required_int("vocab_size", 1);
  c.hidden_size = in.required_int("hidden_size", 1);
  c.num_hidden_layers = in.required_int("num_hidden_layers", 1);
  c.num_attention_heads = in.required_int("num_attention_heads", 1);
  c.intermediate_size = in.required_int("intermediate_size", 1);
  parse_attention_shape(in, info, c);
  c.max_position_embeddings = in.int_or("max_position_embeddings", info.max_position_embeddings, 1);
  c.rms_norm_eps = in.number_or("rms_norm_eps", info.rms_norm_eps, 0.0);
  c.initializer_range = in.number_or("initializer_range", 0.02, 0.0);
  c.tie_word_embeddings = in.bool_or("tie_word_embeddings", false);
  c.hidden_act = in.string_or("hidden_act", "silu");
  if (c.hidden_act != "silu" && c.hidden_act != "swish")
    in.fail("'hidden_act' '" + c.hidden_act + "' is not supported (upcycle implements SwiGLU: \"silu\" only)");
  c.dtype = parse_dtype(in);
  c.rope = parse_rope(in, info);
  parse_biases(in, info, c);
  parse_sliding(in, json, info, c);
  if (info.moe) parse_moe(in, c);
  c.raw = json;
  validate_model_config(c, file);
  return c;
}

}  // namespace

ModelConfig parse_model_config(const Json& json, const std::string& file) {
  try {
    ModelConfig config = parse_checked(json, file);
    check_model_size_limits(config, file);  // before any caller allocates from the sizes
    return config;
  } catch (const nlohmann::json::exception& e) {
    // Every access above is type-checked first; this only turns a missed case into a user error
    // instead of a crash, as the fuzz target demands.
    throw Error(std::string("config.json has an unexpected structure: ") + e.what(), file);
  }
}

ModelConfig read_model_config(const std::filesystem::path& model_dir) {
  std::error_code ec;
  auto status = std::filesystem::status(model_dir, ec);
  if (!std::filesystem::exists(status)) throw Error("model directory does not exist", model_dir.string());
  if (!std::filesystem::is_directory(status))
    throw Error("expected a model directory (config.json + safetensors), got a file", model_dir.string());
  const auto path = model_dir / "config.json";
  if (!std::filesystem::exists(path, ec))
    throw Error("no config.json in this directory (expected a Hugging Face model directory)", model_dir.string());
  return parse_model_config(read_json_file(path, "config.json"), path.string());
}

bool ModelConfig::is_moe_layer(int64_t layer) const {
  UPCYCLE_CHECK(layer >= 0 && layer < num_hidden_layers, "layer index out of range");
  if (!is_moe()) return false;
  if (family == Family::kMixtral) return true;
  if (family == Family::kDots1) return layer >= first_k_dense_replace;
  UPCYCLE_CHECK(decoder_sparse_step >= 1, "decoder_sparse_step must be at least 1 (validate_model_config)");
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
  return (layer + 1) % decoder_sparse_step == 0;
}

std::optional<int64_t> ModelConfig::sliding_window_for_layer(int64_t layer) const {
  UPCYCLE_CHECK(layer >= 0 && layer < num_hidden_layers, "layer index out of range");
  if (!sliding_window) return std::nullopt;
  if (!window_layers.empty()) return window_layers[static_cast<size_t>(layer)] ? sliding_window : std::nullopt;
  // max_window_layers is 0 for families whose window covers every layer (mistral, mixtral, qwen3_moe).
  if (layer < max_window_layers) return std::nullopt;
  return sliding_window;
}

}  // namespace upcycle
