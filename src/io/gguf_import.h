// Streams a planned GGUF import (gguf_model.h) into safetensors through the checkpoint writer:
// each canonical weight is read from the file in chunks of whole rows (whole heads where llama.cpp's
// rotary interleave is undone), dequantised to float32 exactly as ggml does, reordered, and written
// as F32 (bit for bit) or BF16 (round to nearest even) at its final offset. Memory holds one chunk
// (a few MB), never a tensor or the model. Writes into a directory the caller owns (a StagedDir).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/gguf_model.h"

namespace upcycle {

struct GgufWeightsOptions {
  DType dtype = DType::kF32;                    // F32 or BF16 (F16 works too)
  uint64_t max_shard_bytes = 5'000'000'000ull;  // HF's "5GB"
  std::map<std::string, std::string> metadata;  // extra safetensors __metadata__
  uint64_t chunk_bytes = 8u << 20;              // float32 bytes dequantised at a time (≥ one row)
};

// Returns the files written, relative to dir.
std::vector<std::string> write_gguf_weights(const GgufFile& file, const GgufImportPlan& plan,
                                            const GgufWeightsOptions& options, const std::filesystem::path& dir);

}  // namespace upcycle
