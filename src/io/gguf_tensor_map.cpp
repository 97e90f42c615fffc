// Canonical HF weights ↔ GGUF tensor names, and the import plan (see gguf_model.h). Names follow gguf-py's tensor_mapping
// (MODEL_TENSOR → "blk.{bid}.attn_q" etc.). GGUF shapes are ggml's ne[], innermost first, so a
// Linear [out, in] is stored with ne = [in, out] and a stacked expert tensor [E, out, in] with
// ne = [in, out, E]; reversing ne gives the torch shape, and expert e is rows [e·out, (e+1)·out).
#include <set>

#include "core/error.h"
#include "io/gguf_model.h"

namespace upcycle {
namespace {

// Older llama.cpp files (before stacked experts) store Mixtral's experts one tensor each:
// blk.N.ffn_gate.E.weight.
std::string per_expert_name(const WeightSpec& w) {
  const char* part = w.role == WeightRole::kExpertGate ? "ffn_gate" : w.role == WeightRole::kExpertUp ? "ffn_up" : "ffn_down";
  return "blk." + std::to_string(w.layer) + "." + part + "." + std::to_string(w.expert) + ".weight";
}

// blk.N.attn_rot_embd: HF's rotary inv_freq buffer, which old conversions carried along; it is
// derived from the config, and HF (and upcycle's weight table) ignore it too.
bool is_rotary_buffer(std::string_view name) {
  return name.starts_with("blk.") && name.ends_with(".attn_rot_embd");
}

class Planner {
 public:
  explicit Planner(const GgufFile& f) : f_(f) {}

  [[noreturn]] void fail(const std::string& what) const { throw Error(what, f_.path().string()); }

  const GgufTensorInfo& tensor(const std::string& name, const WeightSpec& w) {
    const GgufTensorInfo* t = f_.find_tensor(name);
    if (!t) fail("missing tensor '" + name + "' (for " + w.name + ")");
    const GgmlTypeInfo& type = ggml_type_info(t->type);
    if (!type.dequantizable)
      fail("tensor '" + name + "' has type " + std::string(type.name) + ", which upcycle cannot dequantize (supported: " +
           dequantizable_type_names() + ")");
    used_.insert(name);
    return *t;
  }

  void check_shape(const GgufTensorInfo& t, const Shape& expected, const WeightSpec& w) const {
    if (t.hf_shape() != expected)
      fail("tensor '" + t.name + "' has shape " + shape_string(t.hf_shape()) + " (torch order), expected " +
           shape_string(expected) + " for " + w.name);
  }

  GgufSource source(const WeightSpec& w, const GgufName& target, int64_t unpermute_heads) {
    GgufSource s;
    if (target.expert_slice && !f_.find_tensor(target.name) && f_.find_tensor(per_expert_name(w))) {
      s.tensor = &tensor(per_expert_name(w), w);
      check_shape(*s.tensor, w.shape, w);
      s.rows = s.tensor->rows();
      return s;
    }
    s.tensor = &tensor(target.name, w);
    if (target.expert_slice) {
      Shape stacked = w.shape;
      stacked.insert(stacked.begin(), num_experts_);
      check_shape(*s.tensor, stacked, w);
      s.rows = static_cast<uint64_t>(w.shape[0]);
      s.first_row = static_cast<uint64_t>(w.expert) * s.rows;
      return s;
    }
    if (w.role == WeightRole::kSharedExpertGate && s.tensor->hf_shape() == Shape{w.shape[1]}) {
      // llama.cpp stores qwen2moe's shared-expert gate [1, D] as a vector [D]: same values.
    } else {
      check_shape(*s.tensor, w.shape, w);
    }
    s.rows = s.tensor->rows();
    s.unpermute_heads = unpermute_heads;
    return s;
  }

  void check_all_used() const {
    for (const auto& t : f_.tensors())
      if (!used_.count(t.name) && !is_rotary_buffer(t.name))
        fail("unexpected tensor '" + t.name + "': not part of the model as upcycle maps this architecture");
  }

  int64_t num_experts_ = 0;

 private:
  const GgufFile& f_;
  std::set<std::string, std::less<>> used_;
};

}  // namespace

GgufName gguf_name_for(const WeightSpec& w) {
  const std::string blk = "blk." + std::to_string(w.layer) + ".";
  switch (w.role) {
    case WeightRole::kEmbed: return GgufName{"token_embd.weight"};
    case WeightRole::kFinalNorm: return GgufName{"output_norm.weight"};
    case WeightRole::kLmHead: return GgufName{"output.weight"};
    case WeightRole::kAttnNorm: return GgufName{blk + "attn_norm.weight"};
    case WeightRole::kQProj: return GgufName{blk + "attn_q.weight", false, GgufRotary::kQ};
    case WeightRole::kKProj: return GgufName{blk + "attn_k.weight", false, GgufRotary::kK};
    case WeightRole::kVProj: return GgufName{blk + "attn_v.weight"};
    case WeightRole::kOProj: return GgufName{blk + "attn_output.weight"};
    case WeightRole::kQBias: return GgufName{blk + "attn_q.bias", false, GgufRotary::kQ};
    case WeightRole::kKBias: return GgufName{blk + "attn_k.bias", false, GgufRotary::kK};
    case WeightRole::kVBias: return GgufName{blk + "attn_v.bias"};
    case WeightRole::kOBias: return GgufName{blk + "attn_output.bias"};
    case WeightRole::kQNorm: return GgufName{blk + "attn_q_norm.weight"};
    case WeightRole::kKNorm: return GgufName{blk + "attn_k_norm.weight"};
    case WeightRole::kMlpNorm: return GgufName{blk + "ffn_norm.weight"};
    case WeightRole::kGateProj: return GgufName{blk + "ffn_gate.weight"};
    case WeightRole::kUpProj: return GgufName{blk + "ffn_up.weight"};
    case WeightRole::kDownProj: return GgufName{blk + "ffn_down.weight"};
    case WeightRole::kRouter: return GgufName{blk + "ffn_gate_inp.weight"};
    case WeightRole::kRouterBias: return GgufName{blk + "exp_probs_b.bias"};  // llama.cpp's dots1/deepseek2 name
    case WeightRole::kExpertGate: return GgufName{blk + "ffn_gate_exps.weight", true};
    case WeightRole::kExpertUp: return GgufName{blk + "ffn_up_exps.weight", true};
    case WeightRole::kExpertDown: return GgufName{blk + "ffn_down_exps.weight", true};
    case WeightRole::kSharedGate: return GgufName{blk + "ffn_gate_shexp.weight"};
    case WeightRole::kSharedUp: return GgufName{blk + "ffn_up_shexp.weight"};
    case WeightRole::kSharedDown: return GgufName{blk + "ffn_down_shexp.weight"};
    case WeightRole::kSharedExpertGate: return GgufName{blk + "ffn_gate_inp_shexp.weight"};
  }
  UPCYCLE_CHECK(false, "unmapped weight role");
}

GgufImportPlan plan_gguf_import(const GgufFile& f) {
  GgufImportPlan plan;
  plan.config = gguf_model_config(f);
  plan.architecture = *f.get_string("general.architecture");
  plan.weights = expected_weights(plan.config);
  // Only llama-architecture files carry the rotary interleave (convert_hf_to_gguf.py's LlamaModel.permute).
  const bool interleaved = plan.architecture == "llama";
  Planner planner(f);
  planner.num_experts_ = plan.config.num_experts;
  for (const WeightSpec& w : plan.weights) {
    const GgufName target = gguf_name_for(w);
    int64_t heads = 0;
    if (interleaved && target.rotary == GgufRotary::kQ) heads = plan.config.num_attention_heads;
    if (interleaved && target.rotary == GgufRotary::kK) heads = plan.config.num_key_value_heads;
    plan.sources.push_back(planner.source(w, target, heads));
  }
  planner.check_all_used();
  return plan;
}

}  // namespace upcycle
