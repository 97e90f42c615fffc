// Preset model shapes (see model_presets.h for the table).
#include "io/model_presets.h"

#include "core/error.h"

namespace upcycle {
namespace {

struct PresetShape {
  const char* name;
  int64_t vocab, hidden, layers, heads, kv_heads, ffn, experts, max_positions;
  bool tied;
};

constexpr PresetShape kPresets[] = {
    {"tiny", 512, 64, 2, 4, 2, 192, 4, 512, false},
    {"small", 4096, 256, 4, 8, 4, 704, 8, 2048, false},
    {"base", 8192, 512, 8, 8, 8, 1408, 8, 4096, false},
    {"1b", 128256, 2048, 16, 32, 8, 8192, 8, 131072, true},
    {"7b", 32000, 4096, 32, 32, 8, 14336, 8, 32768, false},
};

}  // namespace

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (const auto& p : kPresets) names.emplace_back(p.name);
    return names;
  }();
  return kNames;
}

ModelConfig preset_config(Family family, std::string_view preset) {
  const PresetShape* shape = nullptr;
  for (const auto& p : kPresets)
    if (preset == p.name) shape = &p;
  if (!shape) {
    std::string list;
    for (const auto& n : preset_names()) list += (list.empty() ? "" : ", ") + n;
    throw Error("unknown preset '" + std::string(preset) + "' (choose one of: " + list + ")");
  }
  ModelConfig c = default_model_config(family);
  c.vocab_size = shape->vocab;
  c.hidden_size = shape->hidden;
  c.num_hidden_layers = shape->layers;
  c.num_attention_heads = shape->heads;
  c.num_key_value_heads = shape->kv_heads;
  c.head_dim = shape->hidden / shape->heads;
  c.intermediate_size = shape->ffn;
  c.max_position_embeddings = shape->max_positions;
  c.tie_word_embeddings = shape->tied;
  if (family_is_moe(family)) {
    c.num_experts = shape->experts;
    c.num_experts_per_tok = 2;
    c.moe_intermediate_size = family == Family::kMixtral ? shape->ffn : shape->ffn / 2;
    if (family == Family::kQwen2Moe) c.shared_expert_intermediate_size = shape->ffn;
    if (family == Family::kDots1) c.shared_expert_intermediate_size = c.moe_intermediate_size;  // n_shared_experts 1
  }
  return c;
}

}  // namespace upcycle
