// The family table (see model_family.h) and the public family helpers of model_config.h.
// Values are the transformers configuration-class defaults; where v4 and v5 differ the comment says so.
#include "io/model_family.h"

#include <algorithm>
#include <array>

#include "core/error.h"

namespace upcycle {
namespace {

// Families in enum order. Sources: models/<family>/configuration_<family>.py (v4.57 __init__ and the
// v5 dataclass fields agree on every value used here).
// clang-format off
constexpr std::array<FamilyInfo, 8> kFamilies = {{
    // llama: num_key_value_heads None -> num_attention_heads; head_dim None -> hidden / heads.
    {.family = Family::kLlama, .model_type = "llama", .architecture = "LlamaForCausalLM", .moe = false,
     .default_kv_heads = 0, .default_head_dim = 0, .max_position_embeddings = 2048, .rms_norm_eps = 1e-6,
     .rope_theta = 10000.0, .default_sliding_window = 0, .bias = BiasRule::kAttentionBias,
     .sliding = SlidingRule::kNone, .qk_norm = false, .has_bos_eos_defaults = true},
    // mistral: sliding_window defaults to 4096 (Mistral-7B-v0.1); released v0.2+ configs say null.
    {.family = Family::kMistral, .model_type = "mistral", .architecture = "MistralForCausalLM", .moe = false,
     .default_kv_heads = 8, .default_head_dim = 0, .max_position_embeddings = 4096 * 32, .rms_norm_eps = 1e-6,
     .rope_theta = 10000.0, .default_sliding_window = 4096, .bias = BiasRule::kNone,
     .sliding = SlidingRule::kAllLayers, .qk_norm = false, .has_bos_eos_defaults = true},
    {.family = Family::kQwen2, .model_type = "qwen2", .architecture = "Qwen2ForCausalLM", .moe = false,
     .default_kv_heads = 32, .default_head_dim = 0, .max_position_embeddings = 32768, .rms_norm_eps = 1e-6,
     .rope_theta = 10000.0, .default_sliding_window = 0, .bias = BiasRule::kQkvAlways,
     .sliding = SlidingRule::kQwenFromLayer, .qk_norm = false, .has_bos_eos_defaults = false},
    // qwen3: head_dim defaults to 128 (a class field), not hidden / heads.
    {.family = Family::kQwen3, .model_type = "qwen3", .architecture = "Qwen3ForCausalLM", .moe = false,
     .default_kv_heads = 32, .default_head_dim = 128, .max_position_embeddings = 32768, .rms_norm_eps = 1e-6,
     .rope_theta = 10000.0, .default_sliding_window = 0, .bias = BiasRule::kAttentionBias,
     .sliding = SlidingRule::kQwenFromLayer, .qk_norm = true, .has_bos_eos_defaults = false},
    // mixtral: rope_theta 1e6 (the class's default_theta), rms_norm_eps 1e-5, no window by default.
    {.family = Family::kMixtral, .model_type = "mixtral", .architecture = "MixtralForCausalLM", .moe = true,
     .default_kv_heads = 8, .default_head_dim = 0, .max_position_embeddings = 4096 * 32, .rms_norm_eps = 1e-5,
     .rope_theta = 1e6, .default_sliding_window = 0, .bias = BiasRule::kNone, .sliding = SlidingRule::kAllLayers,
     .qk_norm = false, .has_bos_eos_defaults = true},
    {.family = Family::kQwen2Moe, .model_type = "qwen2_moe", .architecture = "Qwen2MoeForCausalLM", .moe = true,
     .default_kv_heads = 16, .default_head_dim = 0, .max_position_embeddings = 32768, .rms_norm_eps = 1e-6,
     .rope_theta = 10000.0, .default_sliding_window = 0, .bias = BiasRule::kQkvBiasKey,
     .sliding = SlidingRule::kQwenFromLayer, .qk_norm = false, .has_bos_eos_defaults = false},
    // qwen3_moe: no head_dim class field (modeling falls back to hidden / heads), no max_window_layers.
    {.family = Family::kQwen3Moe, .model_type = "qwen3_moe", .architecture = "Qwen3MoeForCausalLM", .moe = true,
     .default_kv_heads = 4, .default_head_dim = 0, .max_position_embeddings = 32768, .rms_norm_eps = 1e-6,
     .rope_theta = 10000.0, .default_sliding_window = 0, .bias = BiasRule::kAttentionBias,
     .sliding = SlidingRule::kQwenAllLayers, .qk_norm = true, .has_bos_eos_defaults = false},
    // dots1 (Dots1Config, transformers 5): Qwen3 attention + DeepSeek-V3 MoE; kv heads default 32, no
    // head_dim field (hidden / heads), sliding_window 4096 from layer max_window_layers (62).
    {.family = Family::kDots1, .model_type = "dots1", .architecture = "Dots1ForCausalLM", .moe = true,
     .default_kv_heads = 32, .default_head_dim = 0, .max_position_embeddings = 2048, .rms_norm_eps = 1e-6,
     .rope_theta = 10000.0, .default_sliding_window = 4096, .bias = BiasRule::kAttentionBias,
     .sliding = SlidingRule::kFromLayer, .qk_norm = true, .has_bos_eos_defaults = false},
}};
// clang-format on

constexpr std::array<std::string_view, 17> kCommonKeys = {
    "model_type",        "architectures",       "vocab_size",          "hidden_size", "intermediate_size",
    "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",    "max_position_embeddings",
    "rms_norm_eps",      "rope_theta",          "rope_scaling",        "torch_dtype", "tie_word_embeddings",
    "hidden_act",        "initializer_range",
};

constexpr std::array<std::string_view, 4> kQwenSlidingKeys = {"use_sliding_window", "sliding_window",
                                                              "max_window_layers", "layer_types"};
constexpr std::array<std::string_view, 6> kQwenMoeKeys = {"num_experts",           "num_experts_per_tok",
                                                          "moe_intermediate_size", "decoder_sparse_step",
                                                          "mlp_only_layers",       "norm_topk_prob"};

constexpr std::array<std::string_view, 16> kDots1Keys = {
    "attention_bias", "sliding_window",   "max_window_layers",     "layer_types",  "n_routed_experts",
    "n_shared_experts", "num_experts_per_tok", "moe_intermediate_size", "n_group", "topk_group",
    "norm_topk_prob", "routed_scaling_factor", "first_k_dense_replace",
    "scoring_func", "topk_method", "moe_layer_freq"};  // DeepSeek-V3's keys, read by vLLM (not by Dots1Config)

template <size_t N>
bool contains(const std::array<std::string_view, N>& keys, std::string_view key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

}  // namespace

const FamilyInfo& family_info(Family family) {
  const auto index = static_cast<size_t>(family);
  UPCYCLE_CHECK(index < kFamilies.size() && kFamilies[index].family == family, "family table out of order");
  return kFamilies[index];
}

bool family_models_key(Family family, std::string_view key) {
  if (contains(kCommonKeys, key)) return true;
  switch (family) {
    case Family::kLlama:
      return key == "attention_bias" || key == "mlp_bias";
    case Family::kMistral:
      return key == "sliding_window";
    case Family::kMixtral:
      return key == "sliding_window" || key == "num_local_experts" || key == "num_experts_per_tok" ||
             key == "router_aux_loss_coef" || key == "router_jitter_noise";
    case Family::kQwen2:
      return contains(kQwenSlidingKeys, key);
    case Family::kQwen3:
      return key == "attention_bias" || contains(kQwenSlidingKeys, key);
    case Family::kQwen2Moe:
      return contains(kQwenSlidingKeys, key) || contains(kQwenMoeKeys, key) || key == "router_aux_loss_coef" ||
             key == "shared_expert_intermediate_size" || key == "qkv_bias";
    case Family::kQwen3Moe:
      return key == "attention_bias" || key == "use_sliding_window" || key == "sliding_window" ||
             contains(kQwenMoeKeys, key) || key == "router_aux_loss_coef";
    case Family::kDots1:
      return contains(kDots1Keys, key) || key == "num_local_experts";
  }
  return false;
}

bool any_family_models_key(std::string_view key) {
  return std::any_of(all_families().begin(), all_families().end(), [&](Family f) { return family_models_key(f, key); });
}

std::string_view experts_key(Family family) {
  if (family == Family::kDots1) return "n_routed_experts";
  return family == Family::kMixtral ? "num_local_experts" : "num_experts";
}

std::string_view family_model_type(Family family) { return family_info(family).model_type; }
std::string_view family_architecture(Family family) { return family_info(family).architecture; }
bool family_is_moe(Family family) { return family_info(family).moe; }

std::optional<Family> family_from_model_type(std::string_view model_type) {
  for (const auto& info : kFamilies)
    if (info.model_type == model_type) return info.family;
  return std::nullopt;
}

const std::vector<Family>& all_families() {
  static const std::vector<Family> families = {Family::kLlama,   Family::kMistral,  Family::kQwen2,   Family::kQwen3,
                                               Family::kMixtral, Family::kQwen2Moe, Family::kQwen3Moe,
                                               Family::kDots1};
  return families;
}

std::string supported_model_types() {
  std::string out;
  for (Family f : all_families()) out += (out.empty() ? "" : ", ") + std::string(family_model_type(f));
  return out;
}

}  // namespace upcycle
