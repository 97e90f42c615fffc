// The weight table: which tensors a model of a given config has, under HF's names, with their roles
// and shapes, and where each one lives in a checkpoint on disk.
// Canonical names are HF's legacy per-expert names (`…block_sparse_moe.experts.{j}.w1.weight` for
// Mixtral, `…mlp.experts.{j}.gate_proj.weight` for Qwen MoE): what transformers 4.x/5.x save by
// default, vLLM and llama.cpp's converter load. Checkpoints in the transformers-5 fused layout
// (`mlp.experts.gate_up_proj [E, 2F, D]` gate rows first, `mlp.experts.down_proj [E, D, F]`, Mixtral
// router at `mlp.gate.weight`) map onto the same canonical weights as contiguous slices.
// Building a table never reads tensor data: it matches names and shapes only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/shape.h"
#include "io/model_config.h"

namespace upcycle {

class CheckpointWriter;

enum class WeightRole {
  kEmbed, kFinalNorm, kLmHead,
  kAttnNorm, kQProj, kKProj, kVProj, kOProj, kQBias, kKBias, kVBias, kOBias, kQNorm, kKNorm,
  kMlpNorm, kGateProj, kUpProj, kDownProj,                 // dense FFN
  kRouter, kRouterBias, kExpertGate, kExpertUp, kExpertDown,  // routed experts; kRouterBias: dots1's
                                                           // e_score_correction_bias (selection only, no gradient)
  kSharedGate, kSharedUp, kSharedDown, kSharedExpertGate,  // qwen2_moe/dots1 shared expert; qwen2_moe's sigmoid gate
};
std::string_view weight_role_name(WeightRole role);  // "q_proj", "expert.gate", ...

struct WeightSpec {
  std::string name;  // canonical HF name
  WeightRole role;
  int64_t layer = -1;   // -1 for embed, final norm, lm_head
  int64_t expert = -1;  // routed expert index, -1 otherwise
  Shape shape;
};

// Every weight a model of this config has, canonical names, in HF module order
// (embed_tokens, layers 0.., norm, lm_head unless tied). Within a layer: input_layernorm, attention
// (q,k,v,o, biases, norms), post_attention_layernorm, FFN (router, experts 0.., shared expert).
std::vector<WeightSpec> expected_weights(const ModelConfig& config);
// dots1's selection bias of MoE layer `layer` (`…mlp.gate.e_score_correction_bias`, [E]).
std::string router_bias_name(int64_t layer);

enum class ExpertLayout { kNone, kPerExpert, kFused };  // kNone: the model has no MoE layer
std::string_view expert_layout_name(ExpertLayout layout);  // "none", "per-expert", "fused"

struct DiskTensor {
  std::string name;
  Shape shape;
};
// The on-disk tensor list for a layout (kPerExpert = the canonical names; kFused = experts stacked),
// then placeholder_tensors(config): what a writer declares.
std::vector<DiskTensor> disk_tensors(const ModelConfig& config, ExpertLayout layout);
// Tensors that no canonical weight maps to but transformers builds anyway and reports missing when a
// file lacks them: qwen2_moe's zero-width shared expert (shared_expert_intermediate_size 0 still
// builds [0, D] gate/up, [D, 0] down and a [1, D] gate whose output multiplies nothing). Writers
// fill them with zeros; readers accept them and do not require them.
std::vector<DiskTensor> placeholder_tensors(const ModelConfig& config);
// Writes the zeros of placeholder_tensors(config) (a writer that declared disk_tensors()).
void write_placeholder_tensors(CheckpointWriter& writer, const ModelConfig& config);

// Where a canonical weight's elements are: `numel(spec.shape)` contiguous elements of the on-disk
// tensor `tensor`, starting at element `element_offset` (0 unless the tensor is fused).
struct WeightLocation {
  std::string tensor;
  uint64_t element_offset = 0;
};

class WeightTable {
 public:
  // Matches on-disk names and shapes against the config. Detects the expert layout (per-expert or
  // fused; a mix is a problem). Records one problem per missing, unexpected or mis-shaped tensor.
  // Tensors that carry nothing are skipped silently: `rotary_emb.inv_freq` buffers, an `lm_head.weight`
  // saved although tied, placeholder_tensors(). Mixtral's router is
  // accepted under either name (`block_sparse_moe.gate` or v5's `mlp.gate`) in either layout.
  static WeightTable build(const ModelConfig& config, const std::map<std::string, Shape, std::less<>>& on_disk);

  ExpertLayout layout() const { return layout_; }
  const std::vector<WeightSpec>& weights() const { return weights_; }
  // nullptr when the canonical weight is not present on disk (a problem was recorded).
  const WeightLocation* locate(std::string_view canonical_name) const;
  // Human-readable, one per line, each naming the tensor: "missing tensor model.norm.weight",
  // "unexpected tensor foo", "model.layers.0.self_attn.q_proj.weight has shape [64, 32], expected [64, 64]".
  const std::vector<std::string>& problems() const { return problems_; }
  bool ok() const { return problems_.empty(); }

 private:
  ExpertLayout layout_ = ExpertLayout::kNone;
  std::vector<WeightSpec> weights_;
  std::map<std::string, WeightLocation, std::less<>> locations_;
  std::vector<std::string> problems_;
};

// Parameter counts for `inspect`: total; active per token (routed experts counted top-k times of E);
// embedding parameters (embed_tokens + untied lm_head), so callers can print non-embedding counts.
struct ParameterCounts {
  uint64_t total = 0;
  uint64_t active = 0;
  uint64_t embedding = 0;
};
ParameterCounts count_parameters(const ModelConfig& config);

}  // namespace upcycle
