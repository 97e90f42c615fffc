// ModelConfig -> config.json in transformers v4 spelling (`rope_theta` + `rope_scaling`, `torch_dtype`),
// which v4 and v5 both load. The output starts from `raw`, so unknown keys and the user's key order
// survive; v5-only spellings are renamed in place, and keys another family owns are dropped when the
// family changed, so the file never says two things at once. Also: the per-family default config.
#include <algorithm>
#include <array>

#include "core/error.h"
#include "core/file_util.h"
#include "io/config_reader.h"
#include "io/model_config.h"
#include "io/model_family.h"

namespace upcycle {
namespace {

// raw with `rope_parameters` -> `rope_scaling` + `rope_theta` and `dtype` -> `torch_dtype`, each at
// the position of the key it replaces (values are placeholders the caller sets), without the keys of
// another family when the config changed family, and without the other spelling of the expert count.
Json respelled(const Json& raw, Family family) {
  Json out = Json::object();
  if (!raw.is_object()) return out;
  const bool same_family = raw.contains("model_type") && raw["model_type"] == family_model_type(family);
  for (const auto& [key, value] : raw.items()) {
    if (key == "rope_parameters") {
      out["rope_scaling"] = nullptr;
      out["rope_theta"] = nullptr;
    } else if (key == "dtype") {
      out["torch_dtype"] = nullptr;
    } else if (!same_family && any_family_models_key(key) && !family_models_key(family, key)) {
      continue;  // e.g. llama's attention_bias in a mixtral file made from it
    } else {
      out[key] = value;
    }
  }
  // transformers v5 aliases num_experts <-> num_local_experts; keep only this family's spelling.
  if (family_is_moe(family)) out.erase(family == Family::kMixtral ? "num_experts" : "num_local_experts");
  return out;
}

// `rope_scaling` for a non-default type: the source dict when it describes the same type (so keys
// upcycle does not model, such as yarn's beta_fast, survive), with the modelled fields set.
Json rope_scaling_json(const ModelConfig& c) {
  const RopeConfig& r = c.rope;
  if (r.type == "default") return nullptr;
  Json d = Json::object();
  if (c.raw.is_object()) {
    RopeDict source = find_rope_dict(ConfigReader(c.raw, "config.json"));
    if (source.dict) {
      auto type_of = [&](const char* k) { return source.dict->contains(k) && (*source.dict)[k] == r.type; };
      if (type_of("rope_type") || (!source.dict->contains("rope_type") && type_of("type"))) d = *source.dict;
    }
  }
  d.erase("rope_theta");
  // Files from before transformers 4.42 spell the key `type`; keep that spelling when it is the only one.
  const bool old_spelling = d.contains("type") && !d.contains("rope_type");
  if (!old_spelling) d.erase("type");
  d[old_spelling ? "type" : "rope_type"] = r.type;
  const bool llama3 = r.type == "llama3";
  if (r.type == "linear" || llama3 || d.contains("factor") || r.factor != 1.0) d["factor"] = r.factor;
  if (llama3) {
    d["low_freq_factor"] = r.low_freq_factor;
    d["high_freq_factor"] = r.high_freq_factor;
  }
  if (r.original_max_position_embeddings > 0)
    d["original_max_position_embeddings"] = r.original_max_position_embeddings;
  return d;
}

// Candidates for a default config's modelled keys (each family keeps those it models). Not
// layer_types or qkv_bias: the writer adds those only when they say something.
// clang-format off
constexpr std::array<std::string_view, 41> kSkeletonKeys = {
    "architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings",
    "rms_norm_eps", "initializer_range", "rope_theta", "rope_scaling", "tie_word_embeddings", "torch_dtype",
    "attention_bias", "mlp_bias", "sliding_window", "use_sliding_window", "max_window_layers", "num_local_experts",
    "num_experts", "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size",
    "decoder_sparse_step", "mlp_only_layers", "norm_topk_prob", "router_aux_loss_coef", "router_jitter_noise",
    "n_routed_experts", "n_shared_experts", "n_group", "topk_group", "routed_scaling_factor",
    "first_k_dense_replace", "scoring_func", "topk_method", "moe_layer_freq"};
// clang-format on

void set_sliding(const ModelConfig& c, const FamilyInfo& info, Json& j) {
  switch (info.sliding) {
    case SlidingRule::kNone:
      break;
    case SlidingRule::kAllLayers:
      j["sliding_window"] = c.sliding_window ? Json(*c.sliding_window) : Json(nullptr);
      break;
    case SlidingRule::kQwenFromLayer:
    case SlidingRule::kQwenAllLayers:
      // Without use_sliding_window the class ignores sliding_window, so the raw value may stay.
      j["use_sliding_window"] = c.sliding_window.has_value();
      if (c.sliding_window) j["sliding_window"] = *c.sliding_window;
      if (info.sliding == SlidingRule::kQwenAllLayers) break;
      j["max_window_layers"] = c.max_window_layers;
      // Spelled out when a window is on: v5's qwen2_moe derives a different default pattern.
      if (c.sliding_window || (j.contains("layer_types") && !j["layer_types"].is_null())) {
        Json types = Json::array();
        for (int64_t i = 0; i < c.num_hidden_layers; ++i)
          types.push_back(c.sliding_window_for_layer(i) ? "sliding_attention" : "full_attention");
        j["layer_types"] = std::move(types);
      }
      break;
    case SlidingRule::kFromLayer:  // dots1: null is the only way to say "no window" (4096 is the default)
      j["sliding_window"] = c.sliding_window ? Json(*c.sliding_window) : Json(nullptr);
      j["max_window_layers"] = c.max_window_layers;
      if (c.sliding_window) {
        Json types = Json::array();
        for (int64_t i = 0; i < c.num_hidden_layers; ++i)
          types.push_back(c.sliding_window_for_layer(i) ? "sliding_attention" : "full_attention");
        j["layer_types"] = std::move(types);
      } else {
        j.erase("layer_types");  // the class derives all-full from the null window
      }
      break;
  }
}

// Dots1Config's MoE keys (no aux-loss coefficient: the class has none).
void set_dots1_moe(const ModelConfig& c, Json& j) {
  j["n_routed_experts"] = c.num_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["n_shared_experts"] = c.shared_expert_intermediate_size / c.moe_intermediate_size;
  j["n_group"] = c.n_group;
  j["topk_group"] = c.topk_group;
  j["norm_topk_prob"] = c.topk_norm == TopkNorm::kRenormalize;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["first_k_dense_replace"] = c.first_k_dense_replace;
  // DeepSeek-V3's routing keys: transformers ignores them, vLLM's dots1 reads them (engine_rules.cpp).
  j["scoring_func"] = "sigmoid";
  j["topk_method"] = "noaux_tc";
  j["moe_layer_freq"] = 1;
}

void set_moe(const ModelConfig& c, Json& j) {
  if (c.family == Family::kDots1) return set_dots1_moe(c, j);
  j[std::string(experts_key(c.family))] = c.num_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["router_aux_loss_coef"] = c.router_aux_loss_coef;
  if (c.family == Family::kMixtral) {
    j["router_jitter_noise"] = c.router_jitter_noise;
    return;
  }
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  if (c.family == Family::kQwen2Moe) j["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
  j["decoder_sparse_step"] = c.decoder_sparse_step;
  j["mlp_only_layers"] = c.mlp_only_layers;
  j["norm_topk_prob"] = c.topk_norm == TopkNorm::kRenormalize;
}

}  // namespace

Json model_config_to_json(const ModelConfig& c) {
  validate_model_config(c, "config.json");
  const FamilyInfo& info = family_info(c.family);
  Json j = respelled(c.raw, c.family);
  j["architectures"] = Json::array({std::string(info.architecture)});
  j["model_type"] = std::string(info.model_type);
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;  // every family's modeling code reads it when present
  j["hidden_act"] = c.hidden_act;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["initializer_range"] = c.initializer_range;
  j["rope_theta"] = c.rope.theta;
  j["rope_scaling"] = rope_scaling_json(c);
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = std::string(dtype_torch_name(c.dtype));
  if (info.bias == BiasRule::kAttentionBias) j["attention_bias"] = c.qkv_bias;
  if (c.family == Family::kLlama) j["mlp_bias"] = false;
  // qkv_bias is a v5-only key (v4 always adds the biases): written when it says something v4 cannot.
  if (info.bias == BiasRule::kQkvBiasKey && (!c.qkv_bias || j.contains("qkv_bias"))) j["qkv_bias"] = c.qkv_bias;
  set_sliding(c, info, j);
  if (info.moe) set_moe(c, j);
  return j;
}

void write_model_config(const std::filesystem::path& model_dir, const ModelConfig& config) {
  const auto path = model_dir / "config.json";
  validate_model_config(config, path.string());
  write_text_file(path, model_config_to_json(config).dump(2, ' ', false, Json::error_handler_t::replace) + "\n");
}

void write_generation_config(const std::filesystem::path& model_dir, const ModelConfig& config) {
  Json generation = Json::object();
  for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id"})
    if (auto it = config.raw.find(key); it != config.raw.end() && !it->is_null()) generation[key] = *it;
  generation["transformers_version"] = config.raw.value("transformers_version", "4.57.0");
  write_text_file(model_dir / "generation_config.json", generation.dump(2) + "\n");
}

ModelConfig default_model_config(Family family) {
  const FamilyInfo& info = family_info(family);
  ModelConfig c;
  c.family = family;
  c.max_position_embeddings = info.max_position_embeddings;
  c.rms_norm_eps = info.rms_norm_eps;
  c.rope.theta = info.rope_theta;
  c.qkv_bias = info.bias == BiasRule::kQkvAlways || info.bias == BiasRule::kQkvBiasKey;
  c.qk_norm = info.qk_norm;
  if (info.default_sliding_window > 0) c.sliding_window = info.default_sliding_window;
  if (info.sliding == SlidingRule::kQwenFromLayer) c.max_window_layers = 28;
  if (family == Family::kMixtral) c.topk_norm = TopkNorm::kRenormalize;
  if (family == Family::kDots1) {
    c.sliding_window.reset();  // recorded as null: the 4096 default would start at layer 62
    c.max_window_layers = 62;
    c.router_scoring = RouterScoring::kSigmoid;
    c.router_aux_loss_coef = 0.0;
  }

  // The keys the HF class saves that upcycle does not model, in HF's sorted order; modelled keys get
  // placeholders so model_config_to_json fills them in the same order.
  std::vector<std::pair<std::string, Json>> keys = {
      {"attention_dropout", 0.0},
      {"bos_token_id", info.has_bos_eos_defaults ? Json(1) : Json(nullptr)},
      {"eos_token_id", info.has_bos_eos_defaults ? Json(2) : Json(nullptr)},
      {"transformers_version", "4.57.0"},
      {"use_cache", true},
  };
  if (family == Family::kLlama) keys.emplace_back("pretraining_tp", 1);
  if (info.moe) keys.emplace_back("output_router_logits", false);
  for (std::string_view key : kSkeletonKeys)
    if (family_models_key(family, key)) keys.emplace_back(std::string(key), nullptr);
  std::sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  c.raw = Json::object();
  for (auto& [key, value] : keys) c.raw[key] = std::move(value);
  c.raw["model_type"] = std::string(info.model_type);
  return c;
}

}  // namespace upcycle
