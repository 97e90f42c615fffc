// Streamed safetensors checkpoint writing. The caller declares every tensor (name, dtype, shape) up
// front, so shard boundaries and all header offsets are known before any data exists; tensor bytes
// are then written as they are produced, in any order and in pieces, with pwrite at their final
// offsets — the model is never held in memory. Shards follow HF: greedy in declaration order, a new
// shard when the next tensor would push the current one past max_shard_bytes (a tensor larger than
// the limit gets a shard of its own); one shard is `model.safetensors`, more are
// `model-0000i-of-0000N.safetensors` plus `model.safetensors.index.json` with metadata.total_size.
// Headers carry `__metadata__ {"format": "pt", …}` and are space-padded to a multiple of 8 bytes.
// The writer writes into a directory the caller owns (normally a StagedDir); finish() checks every
// byte of every tensor was written exactly once and fsyncs the files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"
#include "io/safetensors.h"

namespace upcycle {

struct TensorDecl {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
};

struct CheckpointWriterOptions {
  uint64_t max_shard_bytes = 5'000'000'000ull;  // HF's default "5GB"
  std::map<std::string, std::string> metadata;   // added to every shard's __metadata__ next to format=pt
  // The file's name when the plan fits one shard (e.g. "optimizer.safetensors"); shards of a larger
  // plan are always model-0000i-of-0000N.safetensors.
  std::string single_file_name = "model.safetensors";
};

class CheckpointWriter {
 public:
  // Creates and sizes the shard files in `dir` and writes their headers. Throws Error for duplicate
  // names, empty plans, or I/O failures (naming the file).
  CheckpointWriter(std::filesystem::path dir, std::vector<TensorDecl> tensors, CheckpointWriterOptions options = {});
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Writes bytes [offset, offset + bytes.size()) of the named tensor's data (already in its dtype).
  void write(std::string_view name, std::span<const std::byte> bytes, uint64_t offset = 0);
  // Writes a tensor from float32 values, converting to its declared float dtype; `first_element`
  // positions the piece. Handy for generated or computed tensors.
  void write_f32(std::string_view name, std::span<const float> values, uint64_t first_element = 0);
  // Copies a whole tensor from a source file: kernel-side (copy_file_range) when dtypes match,
  // chunked conversion otherwise. Shapes must have equal element counts.
  void copy_from(std::string_view name, const SafetensorsFile& source, const TensorInfo& source_tensor);

  // Verifies completeness (names any tensor not fully written), writes the index when sharded,
  // fsyncs every file. Returns the files written, relative to dir.
  std::vector<std::string> finish();

  size_t shard_count() const;
  uint64_t total_bytes() const;  // sum of tensor data bytes (the index's total_size)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upcycle
