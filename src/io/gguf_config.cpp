// GGUF metadata → ModelConfig (see gguf_model.h). Keys are read as llama.cpp's loader reads them
// (llama-model.cpp / src/models/<arch>.cpp), including its defaults: head_dim = embedding_length /
// head_count unless attention.key_length says otherwise, head_count_kv = head_count, rope.freq_base
// = 10000. Shapes the metadata leaves open (expert widths, vocab size, tied output) come from the
// tensors, and any metadata that states them must agree. Norm of the routing weights follows
// llama.cpp's graphs: renormalised top-k for llama-with-experts (mixtral) and qwen3moe, raw softmax
// probabilities for qwen2moe.
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "io/gguf_model.h"
#include "io/model_family.h"

namespace upcycle {
namespace {

class MetadataReader {
 public:
  MetadataReader(const GgufFile& f, std::string arch) : f_(f), arch_(std::move(arch)) {}

  [[noreturn]] void fail(const std::string& what) const { throw Error(what, f_.path().string()); }
  std::string key(std::string_view suffix) const { return arch_ + "." + std::string(suffix); }

  // An integer (or an array of equal integers: llama.cpp allows per-layer head counts) under arch.suffix.
  std::optional<int64_t> integer(std::string_view suffix) const {
    const std::string k = key(suffix);
    const GgufValue* v = f_.find(k);
    if (!v) return std::nullopt;
    if (v->type == GgufType::kArray) {
      const std::vector<int64_t> values = f_.int_array(k);
      if (values.empty()) fail("key '" + k + "' is an empty array");
      for (int64_t x : values)
        if (x != values[0]) fail("key '" + k + "' differs between layers, which the HF families cannot express");
      if (values[0] < 0) fail("key '" + k + "' must not be negative");
      return values[0];
    }
    const uint64_t x = *f_.get_uint(k);
    if (x > uint64_t(INT64_MAX)) fail("key '" + k + "' is out of range");
    return static_cast<int64_t>(x);
  }
  int64_t required_integer(std::string_view suffix) const {
    auto v = integer(suffix);
    if (!v) fail("missing metadata key '" + key(suffix) + "'");
    if (*v <= 0) fail("key '" + key(suffix) + "' must be positive, found " + std::to_string(*v));
    return *v;
  }
  // A float; an F32 is rendered as the shortest decimal that reads back as the same float (1e-05,
  // not 9.999999747378752e-06), which is what the model's own config.json said.
  std::optional<double> real(std::string_view suffix) const {
    const std::string k = key(suffix);
    auto v = f_.get_float(k);
    if (!v || f_.find(k)->type != GgufType::kF32) return v;
    char text[32];
    auto [end, ec] = std::to_chars(text, text + sizeof text, static_cast<float>(*v));
    UPCYCLE_CHECK(ec == std::errc(), "to_chars failed on a float");
    return std::strtod(std::string(text, end).c_str(), nullptr);
  }

  const GgufFile& file() const { return f_; }
  const std::string& arch() const { return arch_; }

 private:
  const GgufFile& f_;
  std::string arch_;
};

Family family_of(const GgufFile& f, const std::string& arch, const MetadataReader& m) {
  if (arch == "llama") return m.integer("expert_count").value_or(0) > 0 ? Family::kMixtral : Family::kLlama;
  if (arch == "qwen2") return Family::kQwen2;
  if (arch == "qwen3") return Family::kQwen3;
  if (arch == "qwen2moe") return Family::kQwen2Moe;
  if (arch == "qwen3moe") return Family::kQwen3Moe;
  throw Error("unsupported architecture '" + arch +
                  "' (general.architecture; upcycle imports llama, llama with experts, qwen2, qwen3, qwen2moe, qwen3moe)",
              f.path().string());
}

// Keys that change what llama.cpp computes in ways the HF families upcycle writes cannot express.
void refuse_unsupported_keys(const MetadataReader& m, const ModelConfig& c) {
  const GgufFile& f = m.file();
  if (auto type = f.get_string(m.key("rope.scaling.type")); type && *type != "none" && *type != "linear")
    m.fail("rope scaling '" + *type + "' (key '" + m.key("rope.scaling.type") +
           "') is not supported (upcycle imports none and linear)");
  if (auto rot = m.integer("rope.dimension_count"); rot && *rot != c.head_dim)
    m.fail("key '" + m.key("rope.dimension_count") + "' is " + std::to_string(*rot) + " but the head dimension is " +
           std::to_string(c.head_dim) + ": partial rotary embeddings are not supported");
  if (auto v = m.integer("attention.value_length"); v && *v != c.head_dim)
    m.fail("key '" + m.key("attention.value_length") + "' (" + std::to_string(*v) +
           ") differs from the key length " + std::to_string(c.head_dim) + ", which the HF families cannot express");
  if (auto scale = m.real("expert_weights_scale"); scale && *scale != 0.0 && *scale != 1.0)
    m.fail("key '" + m.key("expert_weights_scale") + "' scales the routing weights, which the HF families do not");
  if (auto gating = m.integer("expert_gating_func"); gating && *gating != 1)
    m.fail("key '" + m.key("expert_gating_func") + "' selects gating function " + std::to_string(*gating) +
           " (only 1 = softmax is supported)");
  for (const char* suffix : {"attention.clamp_kqv", "logit_scale", "attention.sliding_window", "rope.scaling.attn_factor"})
    if (f.find(m.key(suffix))) m.fail("key '" + m.key(suffix) + "' is not supported by the import");
  if (f.find_tensor("rope_freqs.weight"))
    m.fail("tensor 'rope_freqs.weight' (llama.cpp's precomputed llama3/longrope rope factors) is not supported");
}

void read_rope(const MetadataReader& m, ModelConfig& c) {
  c.rope.type = "default";
  c.rope.theta = m.real("rope.freq_base").value_or(10000.0);
  if (!(c.rope.theta > 0)) m.fail("key '" + m.key("rope.freq_base") + "' must be positive");
  double factor = 1.0;
  const GgufFile& f = m.file();
  if (f.get_string(m.key("rope.scaling.type")) == "linear") {
    auto v = m.real("rope.scaling.factor");
    if (!v) m.fail("missing metadata key '" + m.key("rope.scaling.factor") + "' for linear rope scaling");
    factor = *v;
  } else if (auto legacy = m.real("rope.scale_linear")) {
    factor = *legacy;  // the key llama.cpp wrote before rope.scaling.*
  }
  if (!(factor > 0)) m.fail("the linear rope scaling factor must be positive");
  if (factor != 1.0) {
    c.rope.type = "linear";
    c.rope.factor = factor;
  }
}

// The width of a tensor's output rows (HF dim 1 of [E, out, in] or dim 0 of [out, in]), if present.
std::optional<int64_t> rows_of(const GgufFile& f, const std::string& name, size_t ne_index) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (!t || t->ne.size() <= ne_index) return std::nullopt;
  return t->ne[ne_index];
}

void read_moe(const MetadataReader& m, ModelConfig& c) {
  const GgufFile& f = m.file();
  c.num_experts = m.required_integer("expert_count");
  c.num_experts_per_tok = m.required_integer("expert_used_count");
  // The expert count must match the tensors before anything is sized by it.
  std::optional<int64_t> width;
  if (const GgufTensorInfo* stacked = f.find_tensor("blk.0.ffn_gate_exps.weight")) {
    if (stacked->ne.size() != 3 || stacked->ne[2] != c.num_experts)
      m.fail("key '" + m.key("expert_count") + "' is " + std::to_string(c.num_experts) +
             " but tensor 'blk.0.ffn_gate_exps.weight' has shape " + shape_string(stacked->hf_shape()));
    width = stacked->ne[1];
  } else if (f.find_tensor("blk.0.ffn_gate.0.weight")) {  // older Mixtral files: one tensor per expert
    if (!f.find_tensor("blk.0.ffn_gate." + std::to_string(c.num_experts - 1) + ".weight") ||
        f.find_tensor("blk.0.ffn_gate." + std::to_string(c.num_experts) + ".weight"))
      m.fail("key '" + m.key("expert_count") + "' is " + std::to_string(c.num_experts) +
             " but layer 0 has another number of 'blk.0.ffn_gate.N.weight' tensors");
    width = rows_of(f, "blk.0.ffn_gate.0.weight", 1);
  }
  if (!width) m.fail("missing tensor 'blk.0.ffn_gate_exps.weight' (the experts of an MoE model)");
  if (auto key = m.integer("expert_feed_forward_length"); key && *key != *width)
    m.fail("key '" + m.key("expert_feed_forward_length") + "' is " + std::to_string(*key) +
           " but tensor 'blk.0.ffn_gate_exps.weight' has expert width " + std::to_string(*width));
  c.moe_intermediate_size = *width;
  c.decoder_sparse_step = 1;
  c.mlp_only_layers.clear();
  switch (c.family) {
    case Family::kMixtral:
      // HF's Mixtral spells the expert width intermediate_size; llama.cpp writes it as feed_forward_length.
      if (auto ff = m.integer("feed_forward_length"); ff && *ff != *width)
        m.fail("key '" + m.key("feed_forward_length") + "' is " + std::to_string(*ff) + " but the experts are " +
               std::to_string(*width) + " wide");
      c.intermediate_size = *width;
      c.topk_norm = TopkNorm::kRenormalize;
      break;
    case Family::kQwen2Moe: {
      const auto shared = rows_of(f, "blk.0.ffn_gate_shexp.weight", 1);
      if (auto key = m.integer("expert_shared_feed_forward_length"); key && shared && *key != *shared)
        m.fail("key '" + m.key("expert_shared_feed_forward_length") + "' is " + std::to_string(*key) +
               " but tensor 'blk.0.ffn_gate_shexp.weight' is " + std::to_string(*shared) + " wide");
      c.shared_expert_intermediate_size = shared.value_or(0);
      c.intermediate_size = m.integer("feed_forward_length").value_or(*width);  // used by dense layers only: none here
      c.topk_norm = TopkNorm::kNone;  // llama.cpp's qwen2moe graph: norm_w = false
      break;
    }
    case Family::kQwen3Moe:
      c.intermediate_size = m.integer("feed_forward_length").value_or(*width);
      c.topk_norm = TopkNorm::kRenormalize;  // llama.cpp's qwen3moe graph: norm_w = true, whatever the file says
      break;
    default: UPCYCLE_CHECK(false, "read_moe on a dense family");
  }
}

void read_token_ids(const GgufFile& f, ModelConfig& c) {
  for (auto [gguf_key, hf_key] : {std::pair{"tokenizer.ggml.bos_token_id", "bos_token_id"},
                                  std::pair{"tokenizer.ggml.eos_token_id", "eos_token_id"},
                                  std::pair{"tokenizer.ggml.padding_token_id", "pad_token_id"}}) {
    auto id = f.get_uint(gguf_key);
    if (id && *id >= static_cast<uint64_t>(c.vocab_size))
      throw Error("key '" + std::string(gguf_key) + "' is " + std::to_string(*id) + ", outside the vocabulary of " +
                      std::to_string(c.vocab_size),
                  f.path().string());
    c.raw[hf_key] = id ? Json(*id) : Json(nullptr);
  }
}

}  // namespace

ModelConfig gguf_model_config(const GgufFile& f) {
  auto arch = f.get_string("general.architecture");
  if (!arch) throw Error("missing metadata key 'general.architecture'", f.path().string());
  const MetadataReader m(f, *arch);
  ModelConfig c = default_model_config(family_of(f, *arch, m));
  c.dtype = DType::kF32;
  c.hidden_size = m.required_integer("embedding_length");
  c.num_hidden_layers = m.required_integer("block_count");
  // Every layer has tensors: a larger count is corrupt, and must not size anything.
  if (static_cast<uint64_t>(c.num_hidden_layers) > f.tensors().size())
    m.fail("key '" + m.key("block_count") + "' is " + std::to_string(c.num_hidden_layers) + " but the file holds only " +
           std::to_string(f.tensors().size()) + " tensors");
  c.num_attention_heads = m.required_integer("attention.head_count");
  c.num_key_value_heads = m.integer("attention.head_count_kv").value_or(c.num_attention_heads);
  if (c.num_key_value_heads <= 0) m.fail("key '" + m.key("attention.head_count_kv") + "' must be positive");
  if (c.hidden_size % c.num_attention_heads != 0 && !m.integer("attention.key_length"))
    m.fail("key '" + m.key("attention.head_count") + "' does not divide '" + m.key("embedding_length") + "'");
  c.head_dim = m.integer("attention.key_length").value_or(c.hidden_size / c.num_attention_heads);
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) m.fail("the head dimension " + std::to_string(c.head_dim) + " must be even and positive");
  c.max_position_embeddings = m.required_integer("context_length");
  auto eps = m.real("attention.layer_norm_rms_epsilon");
  if (!eps) m.fail("missing metadata key '" + m.key("attention.layer_norm_rms_epsilon") + "' (RMSNorm epsilon)");
  c.rms_norm_eps = *eps;
  c.sliding_window.reset();  // llama.cpp runs these architectures with full attention
  read_rope(m, c);

  const GgufTensorInfo* embed = f.find_tensor("token_embd.weight");
  if (!embed || embed->ne.size() != 2) m.fail("missing tensor 'token_embd.weight' (a 2-D token embedding)");
  c.vocab_size = embed->ne[1];
  if (auto v = m.integer("vocab_size"); v && *v != c.vocab_size)
    m.fail("key '" + m.key("vocab_size") + "' is " + std::to_string(*v) + " but 'token_embd.weight' has " +
           std::to_string(c.vocab_size) + " rows");
  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;

  if (family_is_moe(c.family)) {
    read_moe(m, c);
  } else {
    c.intermediate_size = m.required_integer("feed_forward_length");
  }
  // Biases: llama/qwen3 switch q, k, v and o together (attention_bias); qwen2_moe's q/k/v follow
  // qkv_bias; qwen2 always has them (checked as tensors by the plan).
  const bool q_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  const bool o_bias = f.find_tensor("blk.0.attn_output.bias") != nullptr;
  switch (family_info(c.family).bias) {
    case BiasRule::kAttentionBias: c.qkv_bias = c.o_bias = q_bias || o_bias; break;
    case BiasRule::kQkvBiasKey: c.qkv_bias = q_bias; break;
    default: break;
  }
  refuse_unsupported_keys(m, c);
  read_token_ids(f, c);
  validate_model_config(c, f.path().string());
  return c;
}

}  // namespace upcycle
