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
  void deepseek_routing() const;

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
  if (info_.sliding == SlidingRule::kQwenFromLayer || info_.sliding == SlidingRule::kFromLayer)
    size(quoted("max_window_layers"), c_.max_window_layers, 0);
  else if (c_.max_window_layers != 0)
    fail("'max_window_layers' must be 0 for " + family() + ": its window covers every layer");
  if (!c_.window_layers.empty()) {
    if (info_.sliding != SlidingRule::kQwenFromLayer && info_.sliding != SlidingRule::kFromLayer)
      fail(family() + " cannot express a per-layer window pattern ('layer_types'); qwen2, qwen3, qwen2_moe and dots1 can");
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
  if (c_.shared_expert_intermediate_size != 0 && c_.family != Family::kQwen2Moe && c_.family != Family::kDots1)
    fail(family() + " has no shared expert ('shared_expert_intermediate_size'); use qwen2_moe or dots1");
  size(quoted("shared_expert_intermediate_size"), c_.shared_expert_intermediate_size, 0);
  size(quoted("decoder_sparse_step"), c_.decoder_sparse_step);
  for (int64_t layer : c_.mlp_only_layers)
    if (layer < 0 || layer >= c_.num_hidden_layers)
      fail("'mlp_only_layers' entry " + std::to_string(layer) + " is out of range (num_hidden_layers is " +
           std::to_string(c_.num_hidden_layers) + ")");
}

// DeepSeek-V3 routing keys: dots1 needs them consistent; every other family must keep the identity.
void Checker::deepseek_routing() const {
  if (c_.family != Family::kDots1) {
    if (c_.router_scoring != RouterScoring::kSoftmax || c_.n_group != 1 || c_.topk_group != 1 ||
        c_.routed_scaling_factor != 1.0 || c_.first_k_dense_replace != 0)
      fail(family() + " cannot express sigmoid routing, expert groups, 'routed_scaling_factor' or "
                      "'first_k_dense_replace'; use dots1");
    return;
  }
  if (c_.router_scoring != RouterScoring::kSigmoid) fail("dots1 always scores experts with a sigmoid");
  if (!c_.mlp_only_layers.empty() || c_.decoder_sparse_step != 1)
    fail("dots1 expresses dense layers by 'first_k_dense_replace' only (no 'mlp_only_layers', 'decoder_sparse_step')");
  const std::string E = std::to_string(c_.num_experts);
  size(quoted("n_group"), c_.n_group);
  size(quoted("topk_group"), c_.topk_group);
  if (c_.num_experts % c_.n_group != 0 || c_.num_experts / c_.n_group < 2)
    fail("'n_group' (" + std::to_string(c_.n_group) + ") must divide 'n_routed_experts' (" + E +
         ") into groups of at least 2 (a group scores by its two best experts)");
  if (c_.topk_group > c_.n_group)
    fail("'topk_group' (" + std::to_string(c_.topk_group) + ") must not exceed 'n_group' (" +
         std::to_string(c_.n_group) + ")");
  if (c_.num_experts_per_tok > c_.topk_group * (c_.num_experts / c_.n_group))
    fail("'num_experts_per_tok' (" + std::to_string(c_.num_experts_per_tok) + ") exceeds the " +
         std::to_string(c_.topk_group * (c_.num_experts / c_.n_group)) + " experts of the 'topk_group' kept groups");
  if (!(c_.routed_scaling_factor > 0) || !std::isfinite(c_.routed_scaling_factor))
    fail("'routed_scaling_factor' must be a positive number");
  if (c_.first_k_dense_replace < 0 || c_.first_k_dense_replace > c_.num_hidden_layers)
    fail("'first_k_dense_replace' (" + std::to_string(c_.first_k_dense_replace) + ") must be in [0, " +
         std::to_string(c_.num_hidden_layers) + "]");
  if (c_.shared_expert_intermediate_size <= 0 || c_.shared_expert_intermediate_size % c_.moe_intermediate_size != 0)
    fail("dots1's shared expert is 'n_shared_experts' ≥ 1 experts of 'moe_intermediate_size' (" +
         std::to_string(c_.moe_intermediate_size) + "), not " + std::to_string(c_.shared_expert_intermediate_size) +
         " wide");
}

}  // namespace

void validate_model_config(const ModelConfig& config, const std::string& file) {
  Checker check(config, file);
  check.shapes();
  check.rope();
  check.attention();
  check.sliding();
  check.moe();
  check.deepseek_routing();
  check_model_size_limits(config, file);
}

}  // namespace upcycle
