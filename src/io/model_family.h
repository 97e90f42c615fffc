// Per-family facts from the transformers configuration classes (v4.57 __init__ defaults, checked
// against the v5 dataclass fields): the defaults a config.json falls back to when a key is absent,
// and how each family spells attention biases, q/k norms and sliding windows. Internal to io/:
// model_config*.cpp and weight_table.cpp read it; nothing else should need HF's per-family quirks.
#pragma once

#include <cstdint>
#include <string_view>

#include "io/model_config.h"

namespace upcycle {

// How a family's config.json says which attention projections carry biases.
enum class BiasRule {
  kNone,           // mistral, mixtral: no biases at all
  kAttentionBias,  // llama, qwen3, qwen3_moe, dots1: `attention_bias` switches q, k, v and o together
  kQkvAlways,      // qwen2: q, k, v always have biases, o never
  kQkvBiasKey,     // qwen2_moe: q, k, v follow `qkv_bias` (v5 key, default true), o never
};

// How a family decides which layers use a sliding attention window.
enum class SlidingRule {
  kNone,           // llama: no sliding window
  kAllLayers,      // mistral, mixtral: `sliding_window` (int or null) applies to every layer
  kQwenFromLayer,  // qwen2, qwen3, qwen2_moe: `use_sliding_window`; layers >= `max_window_layers`
  kQwenAllLayers,  // qwen3_moe: `use_sliding_window`; every layer (no max_window_layers in the class)
  kFromLayer,      // dots1: no switch; `sliding_window` (default 4096, null = off) for layers >= `max_window_layers`
};

struct FamilyInfo {
  Family family;
  std::string_view model_type;
  std::string_view architecture;
  bool moe;
  int64_t default_kv_heads;  // when the key is absent; 0 = num_attention_heads (llama)
  int64_t default_head_dim;  // when the key is absent; 0 = hidden_size / num_attention_heads
  int64_t max_position_embeddings;
  double rms_norm_eps;
  double rope_theta;
  int64_t default_sliding_window;  // mistral's `sliding_window` default (4096); 0 = none
  BiasRule bias;
  SlidingRule sliding;
  bool qk_norm;
  bool has_bos_eos_defaults;  // llama/mistral/mixtral classes default to bos 1, eos 2; qwen to null
};

const FamilyInfo& family_info(Family family);

// Config keys each family models, used when a config changes family (llama -> mixtral) to drop
// keys that belong to the old family and would otherwise sit in the new file with stale meaning.
bool family_models_key(Family family, std::string_view key);
bool any_family_models_key(std::string_view key);

// The key that holds the expert count in this family's config.json.
std::string_view experts_key(Family family);  // "num_local_experts" (mixtral), "n_routed_experts" (dots1) or "num_experts"

}  // namespace upcycle
