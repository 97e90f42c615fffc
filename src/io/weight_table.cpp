// Expected HF weights for a ModelConfig and their match against a checkpoint's tensor list.
// Canonical names are the legacy per-expert ones; the transformers-5 fused layout maps onto them as
// slices: expert e's gate is rows [e*2F, e*2F+F) of gate_up_proj [E, 2F, D] (gate rows first, then up,
// as conversion_mapping.py's MergeModulelist(dim=0) + Concatenate(dim=1) builds it), its down_proj is
// slice e of down_proj [E, D, F]. v5 renames Mixtral's router to `mlp.gate`; either spelling is
// accepted with either expert layout, because v5 applies that rename to every Mixtral checkpoint.
// Shape legend: V vocab, D hidden, H heads, KV kv heads, S head dim, F ffn, E experts.
#include "io/weight_table.h"

#include <cctype>
#include <set>

#include "core/error.h"
#include "io/checkpoint_writer.h"

namespace upcycle {
namespace {

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

void add_attention(const ModelConfig& c, int64_t i, std::vector<WeightSpec>& out) {
  const std::string p = layer_prefix(i) + "self_attn.";
  const int64_t D = c.hidden_size, S = c.head_dim, HS = c.num_attention_heads * S, KVS = c.num_key_value_heads * S;
  out.push_back({p + "q_proj.weight", WeightRole::kQProj, i, -1, {HS, D}});
  out.push_back({p + "k_proj.weight", WeightRole::kKProj, i, -1, {KVS, D}});
  out.push_back({p + "v_proj.weight", WeightRole::kVProj, i, -1, {KVS, D}});
  out.push_back({p + "o_proj.weight", WeightRole::kOProj, i, -1, {D, HS}});
  if (c.qkv_bias) {
    out.push_back({p + "q_proj.bias", WeightRole::kQBias, i, -1, {HS}});
    out.push_back({p + "k_proj.bias", WeightRole::kKBias, i, -1, {KVS}});
    out.push_back({p + "v_proj.bias", WeightRole::kVBias, i, -1, {KVS}});
  }
  if (c.o_bias) out.push_back({p + "o_proj.bias", WeightRole::kOBias, i, -1, {D}});
  if (c.qk_norm) {
    out.push_back({p + "q_norm.weight", WeightRole::kQNorm, i, -1, {S}});
    out.push_back({p + "k_norm.weight", WeightRole::kKNorm, i, -1, {S}});
  }
}

void add_moe(const ModelConfig& c, int64_t i, std::vector<WeightSpec>& out) {
  const int64_t D = c.hidden_size, E = c.num_experts;
  if (c.family == Family::kMixtral) {
    const std::string p = layer_prefix(i) + "block_sparse_moe.";
    const int64_t F = c.intermediate_size;
    out.push_back({p + "gate.weight", WeightRole::kRouter, i, -1, {E, D}});
    for (int64_t e = 0; e < E; ++e) {
      const std::string q = p + "experts." + std::to_string(e) + ".";
      out.push_back({q + "w1.weight", WeightRole::kExpertGate, i, e, {F, D}});
      out.push_back({q + "w3.weight", WeightRole::kExpertUp, i, e, {F, D}});
      out.push_back({q + "w2.weight", WeightRole::kExpertDown, i, e, {D, F}});
    }
    return;
  }
  const std::string p = layer_prefix(i) + "mlp.";
  const int64_t F = c.moe_intermediate_size, Fs = c.shared_expert_intermediate_size;
  out.push_back({p + "gate.weight", WeightRole::kRouter, i, -1, {E, D}});
  if (c.family == Family::kDots1) out.push_back({router_bias_name(i), WeightRole::kRouterBias, i, -1, {E}});
  for (int64_t e = 0; e < E; ++e) {
    const std::string q = p + "experts." + std::to_string(e) + ".";
    out.push_back({q + "gate_proj.weight", WeightRole::kExpertGate, i, e, {F, D}});
    out.push_back({q + "up_proj.weight", WeightRole::kExpertUp, i, e, {F, D}});
    out.push_back({q + "down_proj.weight", WeightRole::kExpertDown, i, e, {D, F}});
  }
  if (c.family == Family::kDots1) {  // Dots1MoE.shared_experts: an ungated MLP
    out.push_back({p + "shared_experts.gate_proj.weight", WeightRole::kSharedGate, i, -1, {Fs, D}});
    out.push_back({p + "shared_experts.up_proj.weight", WeightRole::kSharedUp, i, -1, {Fs, D}});
    out.push_back({p + "shared_experts.down_proj.weight", WeightRole::kSharedDown, i, -1, {D, Fs}});
  } else if (Fs > 0) {
    out.push_back({p + "shared_expert.gate_proj.weight", WeightRole::kSharedGate, i, -1, {Fs, D}});
    out.push_back({p + "shared_expert.up_proj.weight", WeightRole::kSharedUp, i, -1, {Fs, D}});
    out.push_back({p + "shared_expert.down_proj.weight", WeightRole::kSharedDown, i, -1, {D, Fs}});
    out.push_back({p + "shared_expert_gate.weight", WeightRole::kSharedExpertGate, i, -1, {1, D}});
  }
}

bool is_expert_role(WeightRole role) {
  return role == WeightRole::kExpertGate || role == WeightRole::kExpertUp || role == WeightRole::kExpertDown;
}

// The v5 name of Mixtral's router, and the legacy one: accepted interchangeably.
std::string mixtral_fused_router(int64_t layer) { return layer_prefix(layer) + "mlp.gate.weight"; }

// One on-disk tensor the layout expects; `alt_name` is an accepted second spelling (Mixtral's router).
struct PlannedTensor {
  DiskTensor tensor;
  std::string alt_name;
};
struct Plan {
  std::vector<PlannedTensor> tensors;
  std::vector<std::pair<std::string, WeightLocation>> locations;  // canonical name -> where
};

Plan make_plan(const ModelConfig& c, const std::vector<WeightSpec>& specs, ExpertLayout layout) {
  UPCYCLE_CHECK(layout != ExpertLayout::kNone || !c.is_moe(), "a MoE config needs an expert layout");
  Plan plan;
  const bool fused = layout == ExpertLayout::kFused;
  for (const WeightSpec& w : specs) {
    if (fused && is_expert_role(w.role)) {
      // gate/up [F, D] are rows of gate_up_proj [E, 2F, D]; down [D, F] is a slice of down_proj [E, D, F].
      const bool down = w.role == WeightRole::kExpertDown;
      const int64_t D = w.shape[down ? 0 : 1], F = w.shape[down ? 1 : 0];
      const std::string name = layer_prefix(w.layer) + (down ? "mlp.experts.down_proj" : "mlp.experts.gate_up_proj");
      if (w.expert == 0 && w.role != WeightRole::kExpertUp)
        plan.tensors.push_back({{name, down ? Shape{c.num_experts, D, F} : Shape{c.num_experts, 2 * F, D}}, {}});
      const uint64_t expert_block = static_cast<uint64_t>(w.expert) * (down ? 1 : 2) * F * D;
      const uint64_t offset = expert_block + (w.role == WeightRole::kExpertUp ? static_cast<uint64_t>(F * D) : 0);
      plan.locations.push_back({w.name, {name, offset}});
      continue;
    }
    std::string name = w.name, alt;
    if (c.family == Family::kMixtral && w.role == WeightRole::kRouter) {
      alt = mixtral_fused_router(w.layer);
      if (fused) std::swap(name, alt);
    }
    plan.tensors.push_back({{name, w.shape}, alt});
    plan.locations.push_back({w.name, {name, 0}});
  }
  return plan;
}

bool is_fused_expert_name(std::string_view name) {
  return name.ends_with(".mlp.experts.gate_up_proj") || name.ends_with(".mlp.experts.down_proj");
}

// `….experts.<digits>.…`: Mixtral's block_sparse_moe.experts.j.w1 or Qwen's mlp.experts.j.gate_proj.
bool is_per_expert_name(std::string_view name) {
  constexpr std::string_view kMarker = ".experts.";
  for (size_t pos = name.find(kMarker); pos != std::string_view::npos; pos = name.find(kMarker, pos + 1)) {
    size_t k = pos + kMarker.size(), digits = k;
    while (k < name.size() && std::isdigit(static_cast<unsigned char>(name[k]))) ++k;
    if (k > digits && k < name.size() && name[k] == '.') return true;
  }
  return false;
}

// Tensors that carry nothing: rotary inv_freq buffers (old Llama checkpoints), a tied lm_head saved
// anyway, and placeholder_tensors().
bool carries_nothing(const ModelConfig& c, const std::string& name, const Shape& shape) {
  if (name.ends_with(".self_attn.rotary_emb.inv_freq")) return true;
  if (c.tie_word_embeddings && name == "lm_head.weight" && shape == Shape{c.vocab_size, c.hidden_size}) return true;
  for (const DiskTensor& t : placeholder_tensors(c))
    if (t.name == name) return t.shape == shape;
  return false;
}

uint64_t u(int64_t v) { return static_cast<uint64_t>(v); }

}  // namespace

std::string_view weight_role_name(WeightRole role) {
  switch (role) {
    case WeightRole::kEmbed:
      return "embed_tokens";
    case WeightRole::kFinalNorm:
      return "norm";
    case WeightRole::kLmHead:
      return "lm_head";
    case WeightRole::kAttnNorm:
      return "input_layernorm";
    case WeightRole::kQProj:
      return "q_proj";
    case WeightRole::kKProj:
      return "k_proj";
    case WeightRole::kVProj:
      return "v_proj";
    case WeightRole::kOProj:
      return "o_proj";
    case WeightRole::kQBias:
      return "q_proj.bias";
    case WeightRole::kKBias:
      return "k_proj.bias";
    case WeightRole::kVBias:
      return "v_proj.bias";
    case WeightRole::kOBias:
      return "o_proj.bias";
    case WeightRole::kQNorm:
      return "q_norm";
    case WeightRole::kKNorm:
      return "k_norm";
    case WeightRole::kMlpNorm:
      return "post_attention_layernorm";
    case WeightRole::kGateProj:
      return "gate_proj";
    case WeightRole::kUpProj:
      return "up_proj";
    case WeightRole::kDownProj:
      return "down_proj";
    case WeightRole::kRouter:
      return "router";
    case WeightRole::kRouterBias:
      return "router.e_score_correction_bias";
    case WeightRole::kExpertGate:
      return "expert.gate";
    case WeightRole::kExpertUp:
      return "expert.up";
    case WeightRole::kExpertDown:
      return "expert.down";
    case WeightRole::kSharedGate:
      return "shared_expert.gate";
    case WeightRole::kSharedUp:
      return "shared_expert.up";
    case WeightRole::kSharedDown:
      return "shared_expert.down";
    case WeightRole::kSharedExpertGate:
      return "shared_expert_gate";
  }
  return "?";
}

std::string_view expert_layout_name(ExpertLayout layout) {
  switch (layout) {
    case ExpertLayout::kNone:
      return "none";
    case ExpertLayout::kPerExpert:
      return "per-expert";
    case ExpertLayout::kFused:
      return "fused";
  }
  return "?";
}

std::string router_bias_name(int64_t layer) { return layer_prefix(layer) + "mlp.gate.e_score_correction_bias"; }

std::vector<WeightSpec> expected_weights(const ModelConfig& c) {
  const int64_t V = c.vocab_size, D = c.hidden_size, F = c.intermediate_size;
  std::vector<WeightSpec> out;
  out.push_back({"model.embed_tokens.weight", WeightRole::kEmbed, -1, -1, {V, D}});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = layer_prefix(i);
    out.push_back({p + "input_layernorm.weight", WeightRole::kAttnNorm, i, -1, {D}});
    add_attention(c, i, out);
    out.push_back({p + "post_attention_layernorm.weight", WeightRole::kMlpNorm, i, -1, {D}});
    if (c.is_moe_layer(i)) {
      add_moe(c, i, out);
    } else {
      out.push_back({p + "mlp.gate_proj.weight", WeightRole::kGateProj, i, -1, {F, D}});
      out.push_back({p + "mlp.up_proj.weight", WeightRole::kUpProj, i, -1, {F, D}});
      out.push_back({p + "mlp.down_proj.weight", WeightRole::kDownProj, i, -1, {D, F}});
    }
  }
  out.push_back({"model.norm.weight", WeightRole::kFinalNorm, -1, -1, {D}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", WeightRole::kLmHead, -1, -1, {V, D}});
  return out;
}

std::vector<DiskTensor> disk_tensors(const ModelConfig& config, ExpertLayout layout) {
  std::vector<DiskTensor> out;
  for (auto& planned : make_plan(config, expected_weights(config), layout).tensors)
    out.push_back(std::move(planned.tensor));
  for (auto& t : placeholder_tensors(config)) out.push_back(std::move(t));
  return out;
}

std::vector<DiskTensor> placeholder_tensors(const ModelConfig& c) {
  std::vector<DiskTensor> out;
  if (c.family != Family::kQwen2Moe || c.shared_expert_intermediate_size != 0) return out;
  const int64_t D = c.hidden_size;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    if (!c.is_moe_layer(i)) continue;
    const std::string p = layer_prefix(i) + "mlp.";
    out.push_back({p + "shared_expert.gate_proj.weight", {0, D}});
    out.push_back({p + "shared_expert.up_proj.weight", {0, D}});
    out.push_back({p + "shared_expert.down_proj.weight", {D, 0}});
    out.push_back({p + "shared_expert_gate.weight", {1, D}});
  }
  return out;
}

void write_placeholder_tensors(CheckpointWriter& writer, const ModelConfig& config) {
  for (const DiskTensor& t : placeholder_tensors(config))
    if (const uint64_t n = shape_numel(t.shape); n > 0) writer.write_f32(t.name, std::vector<float>(n, 0.0f));
}

WeightTable WeightTable::build(const ModelConfig& config, const std::map<std::string, Shape, std::less<>>& on_disk) {
  WeightTable t;
  t.weights_ = expected_weights(config);
  std::string fused_example, per_expert_example;
  for (const auto& [name, shape] : on_disk) {
    if (fused_example.empty() && is_fused_expert_name(name)) fused_example = name;
    if (per_expert_example.empty() && is_per_expert_name(name)) per_expert_example = name;
  }
  const bool mixed = !fused_example.empty() && !per_expert_example.empty();
  if (!config.is_moe()) {
    t.layout_ = ExpertLayout::kNone;
  } else if (mixed) {
    t.layout_ = ExpertLayout::kPerExpert;  // matched as canonical; the fused ones are covered by this problem
    t.problems_.push_back("checkpoint mixes per-expert and fused expert tensors (" + per_expert_example + ", " +
                          fused_example + ")");
  } else {
    t.layout_ = fused_example.empty() ? ExpertLayout::kPerExpert : ExpertLayout::kFused;
  }

  Plan plan = make_plan(config, t.weights_, t.layout_);
  std::set<std::string, std::less<>> used;                   // on-disk names the plan accounts for
  std::map<std::string, std::string, std::less<>> resolved;  // planned name -> on-disk name, when shape ok
  for (const PlannedTensor& planned : plan.tensors) {
    const std::string& want = planned.tensor.name;
    auto it = on_disk.find(want);
    if (it == on_disk.end() && !planned.alt_name.empty()) it = on_disk.find(planned.alt_name);
    if (it == on_disk.end()) {
      t.problems_.push_back("missing tensor " + want);
      continue;
    }
    used.insert(it->first);
    if (it->second != planned.tensor.shape) {
      t.problems_.push_back(it->first + " has shape " + shape_string(it->second) + ", expected " +
                            shape_string(planned.tensor.shape));
      continue;
    }
    resolved[want] = it->first;
  }
  for (auto& [canonical, location] : plan.locations) {
    auto it = resolved.find(location.tensor);
    if (it == resolved.end()) continue;
    location.tensor = it->second;
    t.locations_.emplace(canonical, location);
  }
  for (const auto& [name, shape] : on_disk) {
    if (used.count(name) || carries_nothing(config, name, shape)) continue;
    if (mixed && is_fused_expert_name(name)) continue;
    t.problems_.push_back("unexpected tensor " + name);
  }
  return t;
}

const WeightLocation* WeightTable::locate(std::string_view canonical_name) const {
  auto it = locations_.find(canonical_name);
  return it == locations_.end() ? nullptr : &it->second;
}

ParameterCounts count_parameters(const ModelConfig& c) {
  // Closed form (no weight list), so counting a 128-expert, 94-layer model costs nothing.
  const uint64_t V = u(c.vocab_size), D = u(c.hidden_size), S = u(c.head_dim);
  const uint64_t HS = u(c.num_attention_heads) * S, KVS = u(c.num_key_value_heads) * S;
  uint64_t attention = 2 * D * HS + 2 * D * KVS + 2 * D;  // q, o; k, v; both layer norms
  if (c.qkv_bias) attention += HS + 2 * KVS;
  if (c.o_bias) attention += D;
  if (c.qk_norm) attention += 2 * S;

  ParameterCounts counts;
  counts.embedding = V * D * (c.tie_word_embeddings ? 1 : 2);
  counts.total = counts.active = counts.embedding + D;  // + final norm
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    counts.total += attention;
    counts.active += attention;
    if (!c.is_moe_layer(i)) {
      counts.total += 3 * D * u(c.intermediate_size);
      counts.active += 3 * D * u(c.intermediate_size);
      continue;
    }
    const uint64_t expert = 3 * D * u(c.moe_intermediate_size);
    const uint64_t Fs = u(c.shared_expert_intermediate_size);
    // router + shared expert + qwen2_moe's shared-expert gate or dots1's e_score_correction_bias (a
    // buffer to transformers, a tensor of the file: counted, so the total matches the files)
    const bool dots1 = c.family == Family::kDots1;
    const uint64_t always = u(c.num_experts) * D + (dots1 ? u(c.num_experts) : 0) + (Fs > 0 ? 3 * D * Fs + (dots1 ? 0 : D) : 0);
    counts.total += always + u(c.num_experts) * expert;
    counts.active += always + u(c.num_experts_per_tok) * expert;
  }
  return counts;
}

}  // namespace upcycle
