// validate_model_config: the invariants parse_model_config guarantees, re-checked for configs built or
// edited in code before they are written. Messages name the config.json key that would carry the value
// and, where a family cannot express a setting (Mixtral without renormalisation, dense layers in
// Mixtral, q/k/v-only biases in Llama), a family that can.
#include <cmath>

#include "core/error.h"
#include "io/config_reader.h"
#include "io/model_config.h"
#include "io/model_family.h"
#include "io/model_limits.h"

namespace upcycle {
namespace {

std::string in_rope(std::string_view key) { return quoted(key) + " in 'rope_scaling'"; }

class Checker {
 public:
  Checker(const ModelConfig& c, const std::string& file) : c_(c), file_(file), info_(family_info(c.family)) {}

  [[noreturn]] void fail(const std::string& what) const { throw Error(what, file_); }
  std::string family() const { return std::string(info_.model_type); }

  // `label` names the value as a message shows it: "'hidden_size'", "'factor' in 'rope_scaling'".
  void size(const std::string& label, int64_t value, int64_t min = 1) const {
    if (value < min || value > kMaxConfigInt)
      fail(label + " must be between " + std::to_string(min) + " and " + std::to_string(kMaxConfigInt) + ", got " +
           std::to_string(value));
  }
  void number(const std::string& label, double value, bool strictly_positive = false) const {
    if (!std::isfinite(value) || value < 0.0 || (strictly_positive && value == 0.0))
      fail(label + (strictly_positive ? " must be positive" : " must be non-negative") + ", got " +
           short_json(Json(value)));
  }

  void shapes() const;
  void rope() const;
  void attention() const;
  void sliding() const;
  void moe() const;

 private:
  const ModelConfig& c_;
  const std::string& file_;
  const FamilyInfo& info_;
};

void Checker::shapes() const {
  size(quoted("vocab_size"), c_.vocab_size);
  size(quoted("hidden_size"), c_.hidden_size);
  size(quoted("intermediate_size"), c_.intermediate_size);
  size(quoted("num_hidden_layers"), c_.num_hidden_layers);
  size(quoted("num_attention_heads"), c_.num_attention_heads);
  size(quoted("num_key_value_heads"), c_.num_key_value_heads);
  size(quoted("head_dim"), c_.head_dim);
  size(quoted("max_position_embeddings"), c_.max_position_embeddings);
  if (c_.num_attention_heads % c_.num_key_value_heads != 0)
    fail("'num_key_value_heads' (" + std::to_string(c_.num_key_value_heads) + ") must divide 'num_attention_heads' (" +
         std::to_string(c_.num_attention_heads) + ")");
  number(quoted("rms_norm_eps"), c_.rms_norm_eps);
  number(quoted("initializer_range"), c_.initializer_range);
  if (c_.hidden_act != "silu" && c_.hidden_act != "swish")
    fail("'hidden_act' '" + c_.hidden_act + "' is not supported (upcycle implements SwiGLU: \"silu\" only)");
  if (!dtype_is_float(c_.dtype) || c_.dtype == DType::kF64)
    fail("'torch_dtype' cannot be " + std::string(dtype_name(c_.dtype)) + " (supported: float32, float16, bfloat16)");
}

void Checker::rope() const {
  const RopeConfig& r = c_.rope;
  number(quoted("rope_theta"), r.theta, true);
  if (r.type.empty()) fail("'rope_type' in 'rope_scaling' must be a non-empty string");
  number(in_rope("factor"), r.factor, true);
  if (r.type != "llama3") return;
  number(in_rope("low_freq_factor"), r.low_freq_factor, true);
  number(in_rope("high_freq_factor"), r.high_freq_factor, true);
  // Llama 3's smoothing divides by (high - low): equal factors would make every frequency NaN.
  if (!(r.high_freq_factor > r.low_freq_factor))
    fail("'high_freq_factor' (" + short_json(Json(r.high_freq_factor)) + ") in 'rope_scaling' must exceed " +
         "'low_freq_factor' (" + short_json(Json(r.low_freq_factor)) + ")");
  size(in_rope("original_max_position_embeddings"), r.original_max_position_embeddings);
}

void Checker::attention() const {
  switch (info_.bias) {
    case BiasRule::kNone:
      if (c_.qkv_bias || c_.o_bias)
        fail(family() + " has no attention biases; biased q/k/v/o_proj need llama or qwen3 ('attention_bias')");
      break;
    case BiasRule::kAttentionBias:
      if (c_.qkv_bias != c_.o_bias)
        fail("'attention_bias' sets q/k/v_proj and o_proj biases together in " + family() +
             "; q/k/v-only biases need qwen2 or qwen2_moe");
      break;
    case BiasRule::kQkvAlways:
      if (!c_.qkv_bias) fail("qwen2 always has q/k/v_proj biases; bias-free attention needs llama or qwen3");
      [[fallthrough]];
    case BiasRule::kQkvBiasKey:
      if (c_.o_bias) fail(family() + " has no o_proj bias; a biased o_proj needs llama or qwen3 ('attention_bias')");
      break;
  }
  if (c_.qk_norm != info_.qk_norm)
    fail(c_.qk_norm ? family() + " has no q_norm/k_norm; per-head q/k norms need qwen3 or qwen3_moe"
                    : family() + " always has q_norm/k_norm");
}

void Checker::sliding() const {
  if (c_.sliding_window) {
    if (info_.sliding == SlidingRule::kNone)
      fail(family() + " has no sliding-window attention ('sliding_window'); use mistral or qwen2");
    size(quoted("sliding_window"), *c_.sliding_window);
  }
  if (info_.sliding == SlidingRule::kQwenFromLayer)
    size(quoted("max_window_layers"), c_.max_window_layers, 0);
  else if (c_.max_window_layers != 0)
    fail("'max_window_layers' must be 0 for " + family() + ": its window covers every layer");
  if (!c_.window_layers.empty()) {
    if (info_.sliding != SlidingRule::kQwenFromLayer)
      fail(family() + " cannot express a per-layer window pattern ('layer_types'); qwen2, qwen3 and qwen2_moe can");
    if (static_cast<int64_t>(c_.window_layers.size()) != c_.num_hidden_layers)
      fail("the window pattern ('layer_types') must have one entry per layer (" +
           std::to_string(c_.num_hidden_layers) + "), got " + std::to_string(c_.window_layers.size()));
  }
}

void Checker::moe() const {
  const std::string experts = quoted(experts_key(c_.family));
  if (!info_.moe) {
    if (c_.num_experts != 0) fail(family() + " is a dense family; MoE needs mixtral, qwen2_moe or qwen3_moe");
    return;
  }
  size(experts, c_.num_experts);
  size(quoted("num_experts_per_tok"), c_.num_experts_per_tok);
  if (c_.num_experts_per_tok > c_.num_experts)
    fail("'num_experts_per_tok' (" + std::to_string(c_.num_experts_per_tok) + ") must not exceed " + experts + " (" +
         std::to_string(c_.num_experts) + ")");
  size(quoted("moe_intermediate_size"), c_.moe_intermediate_size);
  number(quoted("router_aux_loss_coef"), c_.router_aux_loss_coef);
  number(quoted("router_jitter_noise"), c_.router_jitter_noise);
  if (c_.family == Family::kMixtral) {
    const std::string alt = " (qwen2_moe or qwen3_moe can)";
    if (c_.topk_norm != TopkNorm::kRenormalize)
      fail("mixtral always renormalises the top-k router probabilities and cannot express 'norm_topk_prob' false" +
           alt);
    if (!c_.mlp_only_layers.empty() || c_.decoder_sparse_step != 1)
      fail("mixtral makes every layer MoE and cannot express dense layers ('mlp_only_layers', 'decoder_sparse_step')" +
           alt);
    if (c_.moe_intermediate_size != c_.intermediate_size)
      fail("mixtral experts are 'intermediate_size' (" + std::to_string(c_.intermediate_size) +
           ") wide; expert width " + std::to_string(c_.moe_intermediate_size) + " needs qwen2_moe or qwen3_moe");
  } else if (c_.router_jitter_noise != 0.0) {
    fail("'router_jitter_noise' is a mixtral key; " + family() + " cannot express it");
  }
  if (c_.shared_expert_intermediate_size != 0 && c_.family != Family::kQwen2Moe)
    fail(family() + " has no shared expert ('shared_expert_intermediate_size'); use qwen2_moe");
  size(quoted("shared_expert_intermediate_size"), c_.shared_expert_intermediate_size, 0);
  size(quoted("decoder_sparse_step"), c_.decoder_sparse_step);
  for (int64_t layer : c_.mlp_only_layers)
    if (layer < 0 || layer >= c_.num_hidden_layers)
      fail("'mlp_only_layers' entry " + std::to_string(layer) + " is out of range (num_hidden_layers is " +
           std::to_string(c_.num_hidden_layers) + ")");
}

}  // namespace

void validate_model_config(const ModelConfig& config, const std::string& file) {
  Checker check(config, file);
  check.shapes();
  check.rope();
  check.attention();
  check.sliding();
  check.moe();
  check_model_size_limits(config, file);
}

}  // namespace upcycle
