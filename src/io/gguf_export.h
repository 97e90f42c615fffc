// HF checkpoint → GGUF in llama.cpp's conventions, the inverse of gguf_model.h: the architecture and
// metadata keys convert_hf_to_gguf.py writes, gguf-py's tensor names, experts stacked into
// ffn_{gate,up,down}_exps, the rotary row interleave of attn_q/attn_k on llama-architecture files,
// qwen2moe's shared-expert gate as a vector. Tensor types follow the converter: norms, biases and
// routers stay F32; other matrices take the requested type (F32, F16, BF16, Q8_0, the legacy and k-
// quants), or llama.cpp's fallback where rows are not whole blocks (ggml_row_fallback: Q8_0 → F16 as
// the converter does, Q4_K → Q5_0 as llama.cpp's quantiser does, ...). A config llama.cpp
// would compute differently or refuse (the llama.cpp rules of io/engine_rules.h: sliding windows,
// llama3/yarn rope, qwen MoE routing other than llama.cpp's, dense layers inside an MoE model, biases
// llama.cpp does not load, more experts than LLAMA_MAX_EXPERTS) is an Error naming config.json.
#pragma once

#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/gguf_writer.h"
#include "io/model_config.h"
#include "io/weight_table.h"

namespace upcycle {

struct GgufExportTensor {
  std::string name;
  std::vector<int64_t> ne;           // ggml order
  GgmlType type = GgmlType::kF32;
  std::vector<size_t> parts;         // indices into GgufExportPlan::weights, concatenated in order
  int64_t interleave_heads = 0;      // > 0: apply llama.cpp's rotary row interleave over this many heads
};

struct GgufExportPlan {
  std::string architecture;  // llama.cpp's name
  GgmlType requested_type = GgmlType::kF32;  // general.file_type
  ModelConfig config;
  std::vector<WeightSpec> weights;  // canonical (expected_weights)
  std::vector<GgufExportTensor> tensors;
};

// `type` is the requested type of the matrices. Error naming config.json for what llama.cpp cannot run.
GgufExportPlan plan_gguf_export(const ModelConfig& config, GgmlType type, const std::string& config_file);
// general.* and {arch}.* keys (tokenizer keys are data/gguf_tokenizer.h's).
void add_gguf_model_metadata(const GgufExportPlan& plan, const std::string& model_name, GgufWriter& writer);
// Declares plan.tensors in the writer.
void declare_gguf_tensors(const GgufExportPlan& plan, GgufWriter& writer);
// Streams every tensor of the plan from the checkpoint into `sink`, a few MB at a time.
void stream_gguf_tensors(const GgufExportPlan& plan, const Checkpoint& checkpoint, const WeightTable& table,
                         const GgufWriter::TensorSink& sink);

}  // namespace upcycle
