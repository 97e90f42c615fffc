// The engine rule table (see engine_rules.h). Each rule was read from the engine's own source at the
// file and commit its `source` names; docs/compatibility.md quotes the code that decides each one.
// Predicates look only at config.json and the expert layout, never at tensor data.
#include "io/engine_rules.h"

#include <algorithm>
#include <array>

namespace upcycle {
namespace {

using Problem = std::optional<std::string>;

std::string type_of(const ModelConfig& c) { return std::string(family_model_type(c.family)); }
bool is(const ModelConfig& c, Family f) { return c.family == f; }
bool is_qwen_moe(const ModelConfig& c) { return is(c, Family::kQwen2Moe) || is(c, Family::kQwen3Moe); }

// An MoE model some of whose layers are dense (qwen mlp_only_layers / decoder_sparse_step).
bool has_dense_layers(const ModelConfig& c) {
  if (!c.is_moe()) return false;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    if (!c.is_moe_layer(i)) return true;
  return false;
}

// A sliding window on some layers and full attention on others.
bool window_on_some_layers(const ModelConfig& c) {
  bool windowed = false, full = false;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) (c.sliding_window_for_layer(i) ? windowed : full) = true;
  return windowed && full;
}

bool head_dim_is_not_derived(const ModelConfig& c) { return c.head_dim * c.num_attention_heads != c.hidden_size; }

Problem family_not_in(const ModelConfig& c, std::initializer_list<Family> supported, std::string_view what) {
  if (std::find(supported.begin(), supported.end(), c.family) != supported.end()) return std::nullopt;
  return "model_type '" + type_of(c) + "' is not supported (" + std::string(what) + ")";
}

Problem fused_layout(ExpertLayout layout, std::string_view loader) {
  if (layout != ExpertLayout::kFused) return std::nullopt;
  return "expert layout is fused (" + std::string(loader) +
         " maps only per-expert names experts.{j}.*; write with --expert-layout per-expert)";
}

// transformers' ROPE_INIT_FUNCTIONS keys plus "default", which it computes without an entry.
constexpr std::array<std::string_view, 7> kTransformersRopeTypes{"default", "linear", "dynamic", "yarn",
                                                                  "longrope", "llama3", "proportional"};

constexpr int64_t kLlamaMaxExperts = 512;  // LLAMA_MAX_EXPERTS

const std::vector<EngineRule> kRules{
    // ---- transformers: the version pinned in tests/reference/requirements.txt ----
    {"transformers", "RoPE scaling types", "transformers 5.23.0 modeling_rope_utils.py ROPE_INIT_FUNCTIONS",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (std::find(kTransformersRopeTypes.begin(), kTransformersRopeTypes.end(), c.rope.type) != kTransformersRopeTypes.end())
         return std::nullopt;
       return "rope_scaling type '" + c.rope.type + "' is unknown to transformers (it raises KeyError building the rotary embedding)";
     }},

    // ---- vLLM ----
    {"vllm", "expert layout",
     "vllm/model_executor/models/qwen2_moe.py, qwen3_moe.py, mixtral.py load_weights via FusedMoE.make_expert_params_mapping @002fb90",
     [](const ModelConfig&, ExpertLayout l) { return fused_layout(l, "vLLM's MoE loaders"); }},
    {"vllm", "sliding window (dense qwen)", "vllm/model_executor/models/qwen2.py Qwen2Model.__init__ (is_interleaved assert; qwen3.py reuses it)",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!(is(c, Family::kQwen2) || is(c, Family::kQwen3)) || !window_on_some_layers(c)) return std::nullopt;
       return std::string("sliding window on some layers only (max_window_layers < num_hidden_layers): vLLM's Qwen2Model refuses it");
     }},
    {"vllm", "sliding window (qwen MoE)", "vllm/model_executor/models/qwen2_moe.py Qwen2MoeAttention @002fb90, qwen3_moe.py Qwen3MoeAttention @002456d",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is_qwen_moe(c) || !c.sliding_window) return std::nullopt;
       return "sliding_window " + std::to_string(*c.sliding_window) + " is set (vLLM's " + type_of(c) +
              " attention has no window and attends to every position)";
     }},
    {"vllm", "attention biases", "vllm/model_executor/models/qwen2_moe.py Qwen2MoeAttention: QKVParallelLinear(bias=True) @002fb90",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kQwen2Moe) || c.qkv_bias) return std::nullopt;
       return std::string("qkv_bias is false (vLLM's qwen2_moe always adds q/k/v biases and would find none)");
     }},
    {"vllm", "attention biases", "vllm/model_executor/models/qwen3_moe.py Qwen3MoeAttention: o_proj RowParallelLinear(bias=False) @002456d",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kQwen3Moe) || !c.o_bias) return std::nullopt;
       return std::string("attention_bias is true (vLLM's qwen3_moe has no o_proj bias and skips it: another model)");
     }},
    {"vllm", "head_dim", "vllm/model_executor/models/qwen2_moe.py Qwen2MoeAttention: head_dim = hidden_size // num_heads @002fb90",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kQwen2Moe) || !head_dim_is_not_derived(c)) return std::nullopt;
       return "head_dim " + std::to_string(c.head_dim) + " is not hidden_size / num_attention_heads (vLLM's qwen2_moe ignores head_dim)";
     }},
    {"vllm", "dots1 routing keys",
     "vllm/model_executor/models/dots1.py Dots1MoE.__init__ (config.topk_method, config.scoring_func), Dots1DecoderLayer (config.moe_layer_freq) @00bd149",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kDots1) || c.deepseek_routing_keys) return std::nullopt;
       return std::string("config.json lacks scoring_func, topk_method or moe_layer_freq (vLLM's dots1 reads them and "
                          "Dots1Config defines none; add \"scoring_func\": \"sigmoid\", \"topk_method\": \"noaux_tc\", "
                          "\"moe_layer_freq\": 1)");
     }},
    {"vllm", "routed scaling factor (dots1)",
     "vllm/model_executor/models/dots1.py Dots1MoE.forward: (routed_out + shared_out) * routed_scaling_factor @00bd149",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kDots1) || c.routed_scaling_factor == 1.0) return std::nullopt;
       return "routed_scaling_factor " + Json(c.routed_scaling_factor).dump() +
              " also scales the shared expert in vLLM's dots1 (transformers scales the routed experts only)";
     }},
    {"vllm", "sliding window (dots1)", "vllm/model_executor/models/dots1.py Dots1Attention: Attention(...) without a window @00bd149",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kDots1) || !c.sliding_window) return std::nullopt;
       for (int64_t i = 0; i < c.num_hidden_layers; ++i)
         if (c.sliding_window_for_layer(i))
           return "sliding_window " + std::to_string(*c.sliding_window) + " applies to layer " + std::to_string(i) +
                  " (vLLM's dots1 attention has no window and attends to every position)";
       return std::nullopt;
     }},

    // ---- llama.cpp (convert_hf_to_gguf.py or `upcycle export gguf`, then llama.cpp's graphs) ----
    {"llama.cpp", "sliding window", "src/llama-model.cpp load_hparams: LLM_ARCH_LLAMA/QWEN2/QWEN3/QWEN2MOE/QWEN3MOE set no SWA",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!c.sliding_window) return std::nullopt;
       return "sliding_window " + std::to_string(*c.sliding_window) + " is set (llama.cpp attends to every position for this architecture)";
     }},
    {"llama.cpp", "RoPE scaling types", "upcycle export gguf writes {arch}.rope.scaling.type none or linear only (docs/formats.md, GGUF export)",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (c.rope.type == "default" || c.rope.type == "linear") return std::nullopt;
       return "rope_scaling type '" + c.rope.type + "' is not exported (GGUF gets none and linear)";
     }},
    {"llama.cpp", "attention biases", "src/models/qwen3moe.cpp load_arch_tensors (no attn_output bias created) @069be0a, likewise qwen3.cpp",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!(is(c, Family::kQwen3) || is(c, Family::kQwen3Moe)) || !(c.qkv_bias || c.o_bias)) return std::nullopt;
       return std::string("attention_bias is true (llama.cpp's qwen3 graphs have no attention biases)");
     }},
    {"llama.cpp", "attention biases", "src/models/qwen2.cpp, qwen2moe.cpp load_arch_tensors (q/k/v biases loaded) @623ac8d",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!(is(c, Family::kQwen2) || is(c, Family::kQwen2Moe)) || c.qkv_bias) return std::nullopt;
       return std::string("qkv_bias is false (llama.cpp's qwen2 graphs load q/k/v biases)");
     }},
    {"llama.cpp", "dots1", "upcycle export gguf refuses dots1 (its group, scaling and sigmoid keys are not written; docs/formats.md)",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kDots1)) return std::nullopt;
       return std::string("model_type 'dots1' is not exported to GGUF by upcycle");
     }},
    {"llama.cpp", "partial MoE", "src/models/qwen2moe.cpp @623ac8d, qwen3moe.cpp @069be0a: build_moe_ffn on every layer (no dense-layer hparam for these archs)",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (is(c, Family::kDots1) || !has_dense_layers(c)) return std::nullopt;  // dots1: the rule above
       return std::string("decoder_sparse_step/mlp_only_layers make dense layers (llama.cpp's MoE graphs route every layer)");
     }},
    {"llama.cpp", "top-k normalisation", "src/models/qwen2moe.cpp graph: build_moe_ffn(..., norm_w = false) @623ac8d",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kQwen2Moe) || c.topk_norm == TopkNorm::kNone) return std::nullopt;
       return std::string("norm_topk_prob is true (llama.cpp's qwen2moe does not renormalise the top-k weights)");
     }},
    {"llama.cpp", "top-k normalisation", "src/models/qwen3moe.cpp graph: build_moe_ffn(..., norm_w = true) @069be0a",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kQwen3Moe) || c.topk_norm == TopkNorm::kRenormalize) return std::nullopt;
       return std::string("norm_topk_prob is false (llama.cpp's qwen3moe always renormalises the top-k weights)");
     }},
    {"llama.cpp", "shared expert", "src/models/qwen2moe.cpp load_arch_tensors (ffn_*_shexp required) @623ac8d",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kQwen2Moe) || c.shared_expert_intermediate_size > 0) return std::nullopt;
       return std::string("shared_expert_intermediate_size is 0 (llama.cpp's qwen2moe needs the shared expert)");
     }},
    {"llama.cpp", "expert count", "src/llama-hparams.h LLAMA_MAX_EXPERTS = 512 @027d575",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (c.num_experts <= kLlamaMaxExperts) return std::nullopt;
       return std::to_string(c.num_experts) + " experts exceed LLAMA_MAX_EXPERTS (" + std::to_string(kLlamaMaxExperts) + ")";
     }},

    // ---- Megatron-Bridge (AutoBridge.from_hf_pretrained) ----
    {"megatron-bridge", "supported families", "src/megatron/bridge/models/{llama,mistral,qwen,mixtral}/*_bridge.py (no qwen2_moe bridge registered)",
     [](const ModelConfig& c, ExpertLayout) {
       return family_not_in(c, {Family::kLlama, Family::kMistral, Family::kQwen2, Family::kQwen3, Family::kMixtral, Family::kQwen3Moe},
                            "no Megatron-Bridge bridge for it");
     }},
    {"megatron-bridge", "expert layout",
     "src/megatron/bridge/models/qwen/qwen3_moe_bridge.py @3ec0b0a, mixtral/mixtral_bridge.py @1d5b919 mapping_registry (experts.*.gate_proj, experts.*.w1)",
     [](const ModelConfig&, ExpertLayout l) { return fused_layout(l, "Megatron-Bridge's MoE bridges"); }},
    {"megatron-bridge", "head_dim", "src/megatron/bridge/models/mixtral/mixtral_bridge.py provider_bridge: kv_channels = hidden_size // num_attention_heads @1d5b919",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kMixtral) || !head_dim_is_not_derived(c)) return std::nullopt;
       return "head_dim " + std::to_string(c.head_dim) + " is not hidden_size / num_attention_heads (MixtralBridge ignores head_dim)";
     }},
    {"megatron-bridge", "sliding window", "src/megatron/bridge/models/mixtral/mixtral_bridge.py provider_bridge (passes no sliding window) @1d5b919",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kMixtral) || !c.sliding_window) return std::nullopt;
       return "sliding_window " + std::to_string(*c.sliding_window) + " is set (MixtralBridge builds full attention)";
     }},
    {"megatron-bridge", "partial MoE", "src/megatron/bridge/models/qwen/qwen3_moe_bridge.py (every layer an MoE layer; dense mlp.gate_proj unmapped) @3ec0b0a",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kQwen3Moe) || !has_dense_layers(c)) return std::nullopt;
       return std::string("decoder_sparse_step/mlp_only_layers make dense layers (Qwen3MoEBridge maps MoE layers only)");
     }},
    {"megatron-bridge", "attention biases", "src/megatron/bridge/models/qwen/qwen3_moe_bridge.py provider: add_qkv_bias = add_bias_linear = False @3ec0b0a",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kQwen3Moe) || !(c.qkv_bias || c.o_bias)) return std::nullopt;
       return std::string("attention_bias is true (Qwen3MoEBridge builds no attention biases)");
     }},
    {"megatron-bridge", "top-k normalisation",
     "src/megatron/bridge/models/qwen/qwen3_moe_bridge.py moe_router_pre_softmax = False (Megatron-Core: top-k, then softmax over the k) @3ec0b0a",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kQwen3Moe) || c.topk_norm == TopkNorm::kRenormalize) return std::nullopt;
       return std::string("norm_topk_prob is false (Megatron's router renormalises the top-k weights)");
     }},

    // ---- DeepSpeed-Inference v2 (FastGen, build_hf_engine) ----
    {"deepspeed", "supported families", "deepspeed/inference/v2/engine_factory.py build_hf_engine @4ad3724",
     [](const ModelConfig& c, ExpertLayout) {
       return family_not_in(c, {Family::kLlama, Family::kMistral, Family::kQwen2, Family::kMixtral, Family::kQwen2Moe},
                            "build_hf_engine raises 'Unsupported model type'");
     }},
    {"deepspeed", "partial MoE", "deepspeed/inference/v2/model_implementations/qwen_v2_moe/model.py _forward_transformer (MoE + shared expert on every layer)",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kQwen2Moe) || !has_dense_layers(c)) return std::nullopt;
       return std::string("decoder_sparse_step/mlp_only_layers make dense layers (FastGen's qwen2_moe routes every layer)");
     }},
    {"deepspeed", "shared expert", "deepspeed/inference/v2/model_implementations/qwen_v2_moe/model.py make_moe_layer: expert width = shared_expert_intermediate_size // top_k",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kQwen2Moe) || c.moe_intermediate_size * c.num_experts_per_tok == c.shared_expert_intermediate_size)
         return std::nullopt;
       return "moe_intermediate_size " + std::to_string(c.moe_intermediate_size) + " is not shared_expert_intermediate_size / num_experts_per_tok (" +
              std::to_string(c.shared_expert_intermediate_size) + " / " + std::to_string(c.num_experts_per_tok) + "), which FastGen assumes";
     }},
    {"deepspeed", "head_dim", "deepspeed/inference/v2/model_implementations/qwen_v2_moe/model.py head_size = model_dim // n_heads",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!is(c, Family::kQwen2Moe) || !head_dim_is_not_derived(c)) return std::nullopt;
       return "head_dim " + std::to_string(c.head_dim) + " is not hidden_size / num_attention_heads (FastGen's qwen2_moe ignores head_dim)";
     }},

    // ---- torchtitan (HF checkpoints through the models' StateDictAdapter) ----
    {"torchtitan", "supported families", "torchtitan/models/{llama3,qwen3}/model/state_dict_adapter.py (HF adapters: llama3, qwen3 dense+MoE, deepseek_v3, llama4)",
     [](const ModelConfig& c, ExpertLayout) {
       return family_not_in(c, {Family::kLlama, Family::kQwen3, Family::kQwen3Moe}, "torchtitan has no HF adapter for it");
     }},
    {"torchtitan", "expert layout", "torchtitan/models/qwen3/model/state_dict_adapter.py from_hf_map_expert (mlp.experts.{}.gate_proj) @2019547",
     [](const ModelConfig&, ExpertLayout l) { return fused_layout(l, "torchtitan's Qwen3StateDictAdapter"); }},
    {"torchtitan", "attention biases", "torchtitan/models/qwen3/model/state_dict_adapter.py from_hf_map (no *_proj.bias entries) @2019547",
     [](const ModelConfig& c, ExpertLayout) -> Problem {
       if (!(c.qkv_bias || c.o_bias)) return std::nullopt;
       return std::string("attention biases are set (torchtitan's adapters map no attention bias)");
     }},
};

}  // namespace

const std::vector<EngineRule>& engine_rules() { return kRules; }

const std::vector<std::string>& engine_names() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (const EngineRule& r : kRules)
      if (std::find(names.begin(), names.end(), r.engine) == names.end()) names.emplace_back(r.engine);
    return names;
  }();
  return kNames;
}

std::vector<std::string> engine_problems(std::string_view engine, const ModelConfig& config, ExpertLayout layout) {
  std::vector<std::string> problems;
  for (const EngineRule& r : kRules)
    if (r.engine == engine)
      if (auto p = r.problem(config, layout)) problems.push_back(*p + " (" + std::string(r.source) + ")");
  return problems;
}

std::string engine_rules_markdown() {
  std::string md = "| engine | checks | source |\n|---|---|---|\n";
  for (const EngineRule& r : kRules)
    md += "| " + std::string(r.engine) + " | " + std::string(r.aspect) + " | " + std::string(r.source) + " |\n";
  return md;
}

}  // namespace upcycle
