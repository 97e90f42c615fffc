// A GGUF file read as a Hugging Face model: the config.json it implies and, for every canonical HF
// weight, where its values lie in the file. llama.cpp architectures → HF families:
//   llama (no experts) → llama; llama with {arch}.expert_count > 0 → mixtral; qwen2 → qwen2;
//   qwen3 → qwen3; qwen2moe → qwen2_moe; qwen3moe → qwen3_moe.
// llama.cpp's converter interleaves the rows of every head of attn_q and attn_k (weights and biases)
// for its rotary kernel on llama-arch files; the plan records that so the import puts HF's
// half-split order back (qwen files are written unpermuted). Stacked expert tensors
// (ffn_{gate,up,down}_exps, [E, out, in]) map to per-expert slices. Every metadata key that changes
// the maths and cannot be honoured (partial rotary, yarn/longrope scaling, rope_freqs factors,
// expert weight scaling, non-softmax gating, ...) and every tensor the mapping does not consume is an
// Error naming the key or tensor and the file, so an import never silently computes something else.
#pragma once

#include <string>
#include <vector>

#include "io/gguf_file.h"
#include "io/model_config.h"
#include "io/weight_table.h"

namespace upcycle {

// A canonical weight's GGUF tensor: its name (stacked experts share one: blk.N.ffn_gate_exps.weight
// holds every expert's gate), and whether llama-architecture files interleave its rows.
enum class GgufRotary { kNone, kQ, kK };  // kQ: num_attention_heads heads, kK: num_key_value_heads
struct GgufName {
  std::string name;
  bool expert_slice = false;  // one expert of a stacked [E, out, in] tensor
  GgufRotary rotary = GgufRotary::kNone;
};
GgufName gguf_name_for(const WeightSpec& weight);

// Where one canonical weight's values are: `rows` rows of `tensor` starting at `first_row` (a whole
// tensor, or one expert of a stacked tensor).
struct GgufSource {
  const GgufTensorInfo* tensor = nullptr;
  uint64_t first_row = 0;
  uint64_t rows = 0;
  // > 0: undo llama.cpp's rotary interleave over this many heads (row 2j+t of a head becomes row
  // t·S/2 + j, S = head_dim). 0: copy as stored.
  int64_t unpermute_heads = 0;
};

struct GgufImportPlan {
  std::string architecture;          // general.architecture
  ModelConfig config;                // dtype left at F32; the caller sets the file dtype
  std::vector<WeightSpec> weights;   // canonical names in HF module order (expected_weights)
  std::vector<GgufSource> sources;   // parallel to weights
};

// The config a GGUF file describes (config.json fields, bos/eos/pad ids in `raw`). Error naming the
// key and the file for a missing or contradictory key or an unsupported feature.
ModelConfig gguf_model_config(const GgufFile& file);
// Config plus the tensor mapping, with every tensor's presence, shape and type checked (a type upcycle
// cannot dequantise is an Error naming the tensor). Reads no tensor data.
GgufImportPlan plan_gguf_import(const GgufFile& file);

}  // namespace upcycle
