// Writing a model's parameters as an HF checkpoint directory: config.json (with `dtype` set to the
// file dtype) and safetensors shards through CheckpointWriter, in the expert layout asked for
// (per-expert names or fused tensors, as WeightTable reads them back). F32 files hold the fp32
// master weights bit for bit (training checkpoints need that for exact resume); BF16/F16 round to
// nearest even. The caller owns the directory (normally a StagedDir) and copies tokenizer files.
// Non-goals: quantised formats, writing only some tensors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/model_config.h"
#include "io/weight_table.h"
#include "model/parameters.h"

namespace upcycle::model {

struct SaveModelOptions {
  DType dtype = DType::kF32;
  ExpertLayout layout = ExpertLayout::kPerExpert;  // ignored for dense models
  std::map<std::string, std::string> metadata;     // extra safetensors __metadata__ entries
  uint64_t max_shard_bytes = 5'000'000'000ull;     // largest safetensors shard (HF's "5GB")
};

// Writes `params` (a TensorStore built for `config`) into `dir`; returns the files written, relative to
// `dir` ("config.json" first, then the safetensors shards and index as CheckpointWriter::finish lists them).
std::vector<std::string> save_model(const ModelConfig& config, const TensorStore& params,
                                    const std::filesystem::path& dir, const SaveModelOptions& options);

}  // namespace upcycle::model
