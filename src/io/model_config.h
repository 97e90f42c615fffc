// HF config.json ⇄ ModelConfig for the families upcycle reads and writes: dense llama, mistral,
// qwen2, qwen3 and MoE mixtral, qwen2_moe, qwen3_moe, dots1 (../shared/reference/systems.md §3).
// Reading accepts transformers v4 and v5 spellings (`rope_theta`/`rope_scaling` or `rope_parameters`;
// `torch_dtype` or `dtype`; old `type` inside rope_scaling). Writing emits the v4 spellings, which
// both v4 and v5 load, and keeps every key of the original file that upcycle does not model.
// Errors name config.json and the key: missing required keys, wrong types, inconsistent shapes
// (heads not dividing hidden size, kv heads not dividing heads, top-k > experts), unknown model_type
// (listing the supported ones), features the engine cannot honour (mlp_bias, non-silu activation).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/json.h"

namespace upcycle {

enum class Family { kLlama, kMistral, kQwen2, kQwen3, kMixtral, kQwen2Moe, kQwen3Moe, kDots1 };

std::string_view family_model_type(Family family);      // "llama", "qwen2_moe", ...
std::string_view family_architecture(Family family);    // "LlamaForCausalLM", ...
std::optional<Family> family_from_model_type(std::string_view model_type);
bool family_is_moe(Family family);
std::string supported_model_types();  // "llama, mistral, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe, dots1"
const std::vector<Family>& all_families();

struct RopeConfig {
  std::string type = "default";  // default | linear | llama3 | other HF types (carried, engine may refuse)
  double theta = 10000.0;
  double factor = 1.0;                               // linear, llama3
  double low_freq_factor = 1.0;                      // llama3
  double high_freq_factor = 4.0;                     // llama3
  int64_t original_max_position_embeddings = 0;      // llama3
};

// What happens to the k selected router probabilities (softmax over all experts, then top-k).
// kRenormalize divides by their sum (Mixtral always; Qwen with norm_topk_prob) — identical to
// "top-k on logits, then softmax over the k". kNone keeps them as they are (Qwen default).
enum class TopkNorm { kNone, kRenormalize };

// How router logits become the scores top-k ranks and combines: softmax over all experts (Mixtral,
// Qwen-MoE) or an independent sigmoid per expert (DeepSeek-V3, dots1; no aux or z loss: see moe_layer.h).
enum class RouterScoring { kSoftmax, kSigmoid };

struct ModelConfig {
  Family family = Family::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;  // dense FFN width (Mixtral: the expert width, as HF spells it)
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // absent in config.json: the family class default (llama: = heads)
  int64_t head_dim = 0;  // explicit or hidden_size / num_attention_heads
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // q/k/v_proj have biases (qwen2, qwen2_moe; llama/qwen3 with attention_bias)
  bool o_bias = false;    // o_proj has a bias (llama/qwen3/qwen3_moe with attention_bias)
  bool qk_norm = false;   // per-head RMSNorm q_norm/k_norm [head_dim] (qwen3, qwen3_moe)
  // Sliding-window attention: window size when some layer uses it (mistral/mixtral `sliding_window`;
  // qwen2/qwen3 only when `use_sliding_window`), nullopt for full attention everywhere.
  std::optional<int64_t> sliding_window;
  int64_t max_window_layers = 0;  // qwen: layers with index >= this use the window (HF semantics)
  // qwen2/qwen3/qwen2_moe: the window layers as a `layer_types` list spelled them (true = sliding)
  // when that list is not the max_window_layers rule (transformers 5's Qwen2-MoE derives other
  // patterns and saves them); empty = the rule. Only meaningful with sliding_window.
  std::vector<bool> window_layers;
  std::string hidden_act = "silu";
  DType dtype = DType::kBF16;  // torch_dtype / dtype; absent in config.json: F32, as HF loads it
  double initializer_range = 0.02;

  // MoE (0 experts = dense).
  int64_t num_experts = 0;           // num_local_experts (mixtral) / num_experts (qwen)
  int64_t num_experts_per_tok = 0;   // top-k
  int64_t moe_intermediate_size = 0; // expert width (mixtral: = intermediate_size)
  int64_t shared_expert_intermediate_size = 0;  // qwen2_moe shared expert width, 0 = none (absent: HF's 5632)
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  TopkNorm topk_norm = TopkNorm::kNone;
  double router_aux_loss_coef = 0.001;
  double router_jitter_noise = 0.0;
  // DeepSeek-V3 routing (dots1; defaults are the identity for the other families): sigmoid scores,
  // experts in n_group groups of which the topk_group best (sum of a group's two best biased scores)
  // are eligible, combine weights × routed_scaling_factor, layers < first_k_dense_replace dense.
  // The shared expert is shared_expert_intermediate_size = n_shared_experts × moe_intermediate_size wide.
  RouterScoring router_scoring = RouterScoring::kSoftmax;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  double routed_scaling_factor = 1.0;
  int64_t first_k_dense_replace = 0;
  // dots1: config.json names scoring_func, topk_method and moe_layer_freq, which Dots1Config does not
  // define but vLLM's dots1 reads (DeepSeek-V3's keys; upcycle writes them, engine_rules checks them).
  bool deepseek_routing_keys = false;

  Json raw;  // the file as read; unknown keys survive a rewrite

  bool is_moe() const { return num_experts > 0; }
  // HF rule: qwen MoE layer iff not in mlp_only_layers and (i+1) % decoder_sparse_step == 0;
  // mixtral: every layer; dots1: i >= first_k_dense_replace.
  bool is_moe_layer(int64_t layer) const;
  // Attention window for this layer, nullopt = full causal attention (HF layer_types semantics).
  std::optional<int64_t> sliding_window_for_layer(int64_t layer) const;
};

// Parses a config.json object. `file` labels errors.
ModelConfig parse_model_config(const Json& json, const std::string& file);
ModelConfig read_model_config(const std::filesystem::path& model_dir);  // model_dir/config.json
// `raw` updated with every modelled field in v4 spelling (v5-only spellings replaced).
Json model_config_to_json(const ModelConfig& config);
void write_model_config(const std::filesystem::path& model_dir, const ModelConfig& config);
// generation_config.json of a checkpoint upcycle creates (init, import): the bos/eos/pad ids of the
// config and its transformers_version.
void write_generation_config(const std::filesystem::path& model_dir, const ModelConfig& config);
// A config with the family's HF defaults for the keys that are not shapes (eps, rope theta,
// norm_topk_prob, …); shapes are left 0 for the caller to fill. `raw` holds the family's usual keys.
ModelConfig default_model_config(Family family);
// Re-checks the invariants parse_model_config enforces (for configs built in code).
void validate_model_config(const ModelConfig& config, const std::string& file);

}  // namespace upcycle
