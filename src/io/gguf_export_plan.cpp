// ModelConfig → GGUF tensor list and metadata (see gguf_export.h). What convert_hf_to_gguf.py writes
// for these families (TextModel / LlamaModel / Qwen2Model / Qwen2MoeModel / Qwen3MoeModel
// set_gguf_parameters), and what llama.cpp's graphs for them compute, decide both what is written and
// what is refused.
#include <map>

#include "core/error.h"
#include "io/engine_rules.h"
#include "io/ggml_quantize.h"
#include "io/gguf_export.h"
#include "io/gguf_model.h"

namespace upcycle {
namespace {

std::string architecture_of(Family f) {
  switch (f) {
    case Family::kLlama:
    case Family::kMistral:  // llama.cpp converts Mistral as llama
    case Family::kMixtral: return "llama";
    case Family::kQwen2: return "qwen2";
    case Family::kQwen3: return "qwen3";
    case Family::kQwen2Moe: return "qwen2moe";
    case Family::kQwen3Moe: return "qwen3moe";
    case Family::kDots1:  // llama.cpp's dots1 needs its group/scaling/sigmoid keys: not written yet
      throw Error("GGUF export of dots1 is not implemented; export from a qwen3_moe conversion instead");
  }
  UPCYCLE_CHECK(false, "unknown family");
}

// Configs llama.cpp cannot run as HF computes them: the llama.cpp rules of the engine table
// (engine_rules.cpp), shared with `upcycle check --target llama.cpp` so the two cannot disagree.
void refuse_unsupported(const ModelConfig& c, const std::string& file) {
  // No llama.cpp rule depends on the expert layout: this exporter reads either one.
  const std::vector<std::string> problems = engine_problems("llama.cpp", c, ExpertLayout::kPerExpert);
  if (!problems.empty()) throw Error(problems.front() + ": llama.cpp would compute another model or refuse it", file);
}

// The converter's and llama.cpp's quantiser's choice: vectors, norms and routers stay F32; matrices take
// the requested type, or its fallback for rows that are not whole blocks (ggml_row_fallback: Q8_0 and
// the legacy types → F16, Q4_K → Q5_0, ...; a SmolLM2-sized row of 576 takes no 256-value k-quant).
GgmlType type_for(const std::string& name, const std::vector<int64_t>& ne, GgmlType requested) {
  if (ne.size() <= 1 || name.ends_with("_norm.weight") || name.ends_with("ffn_gate_inp.weight")) return GgmlType::kF32;
  return ggml_row_fallback(requested, ne[0]);
}

// llama_ftype, as llama.cpp's quantiser records it: a k-quant everywhere is its "_S" (small) mix.
uint32_t file_type_of(GgmlType t) {
  switch (t) {
    case GgmlType::kF16: return 1;   // MOSTLY_F16
    case GgmlType::kQ4_0: return 2;
    case GgmlType::kQ4_1: return 3;
    case GgmlType::kQ8_0: return 7;
    case GgmlType::kQ5_0: return 8;
    case GgmlType::kQ5_1: return 9;
    case GgmlType::kQ2_K: return 10;
    case GgmlType::kQ3_K: return 11;  // MOSTLY_Q3_K_S
    case GgmlType::kQ4_K: return 14;  // MOSTLY_Q4_K_S
    case GgmlType::kQ5_K: return 16;  // MOSTLY_Q5_K_S
    case GgmlType::kQ6_K: return 18;
    case GgmlType::kBF16: return 32;
    default: return 0;                // ALL_F32
  }
}

}  // namespace

GgufExportPlan plan_gguf_export(const ModelConfig& c, GgmlType type, const std::string& config_file) {
  refuse_unsupported(c, config_file);
  GgufExportPlan plan;
  plan.architecture = architecture_of(c.family);
  plan.requested_type = type;
  plan.config = c;
  plan.weights = expected_weights(c);
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < plan.weights.size(); ++i) {
    const WeightSpec& w = plan.weights[i];
    const GgufName n = gguf_name_for(w);
    if (auto it = index.find(n.name); it != index.end()) {
      plan.tensors[it->second].parts.push_back(i);  // the next expert of a stacked tensor
      continue;
    }
    GgufExportTensor t;
    t.name = n.name;
    t.ne.assign(w.shape.rbegin(), w.shape.rend());
    if (n.expert_slice) t.ne.push_back(c.num_experts);
    if (w.role == WeightRole::kSharedExpertGate) t.ne = {w.shape.back()};  // llama.cpp loads it as {n_embd}
    t.type = type_for(t.name, t.ne, type);
    t.parts = {i};
    if (plan.architecture == "llama" && n.rotary != GgufRotary::kNone)
      t.interleave_heads = n.rotary == GgufRotary::kQ ? c.num_attention_heads : c.num_key_value_heads;
    index.emplace(t.name, plan.tensors.size());
    plan.tensors.push_back(std::move(t));
  }
  return plan;
}

void add_gguf_model_metadata(const GgufExportPlan& plan, const std::string& model_name, GgufWriter& w) {
  const ModelConfig& c = plan.config;
  const std::string a = plan.architecture + ".";
  auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  w.add_string("general.architecture", plan.architecture);
  w.add_string("general.name", model_name);
  w.add_u32("general.file_type", file_type_of(plan.requested_type));
  w.add_u32("general.quantization_version", 2);  // GGML_QNT_VERSION, written by the converter always
  w.add_u32(a + "block_count", u32(c.num_hidden_layers));
  w.add_u32(a + "context_length", u32(c.max_position_embeddings));
  w.add_u32(a + "embedding_length", u32(c.hidden_size));
  w.add_u32(a + "feed_forward_length", u32(c.intermediate_size));
  w.add_u32(a + "attention.head_count", u32(c.num_attention_heads));
  w.add_u32(a + "attention.head_count_kv", u32(c.num_key_value_heads));
  w.add_f32(a + "rope.freq_base", static_cast<float>(c.rope.theta));
  w.add_f32(a + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.add_u32(a + "attention.key_length", u32(c.head_dim));
  w.add_u32(a + "attention.value_length", u32(c.head_dim));
  if (plan.architecture == "llama") w.add_u32(a + "rope.dimension_count", u32(c.head_dim));
  w.add_u32(a + "vocab_size", u32(c.vocab_size));
  if (c.rope.type == "linear") {
    w.add_string(a + "rope.scaling.type", "linear");
    w.add_f32(a + "rope.scaling.factor", static_cast<float>(c.rope.factor));
  }
  if (c.is_moe()) {
    w.add_u32(a + "expert_count", u32(c.num_experts));
    w.add_u32(a + "expert_used_count", u32(c.num_experts_per_tok));
    if (c.family != Family::kMixtral) w.add_u32(a + "expert_feed_forward_length", u32(c.moe_intermediate_size));
    if (c.family == Family::kQwen2Moe)
      w.add_u32(a + "expert_shared_feed_forward_length", u32(c.shared_expert_intermediate_size));
  }
}

void declare_gguf_tensors(const GgufExportPlan& plan, GgufWriter& writer) {
  for (const auto& t : plan.tensors) writer.add_tensor(t.name, t.ne, t.type);
}

}  // namespace upcycle
