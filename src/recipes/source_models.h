// The dense checkpoints a conversion reads: config, tensors and weight table per source, checked to
// share one architecture (the error names the config key or tensor that differs), and fp32 reads of
// any canonical weight or element range, through pread so memory stays bounded (no mapping); 2-D
// weights also as stored (RawMatrix), for recipes that only move or scale elements.
// Non-goals: MoE sources (convert takes dense models), fused layouts (dense models have none).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "io/checkpoint.h"
#include "io/model_config.h"
#include "io/weight_table.h"

namespace upcycle::recipes {

struct SourceModel {
  std::filesystem::path dir;
  ModelConfig config;
  Checkpoint checkpoint;
  WeightTable table;
  // The file and tensor holding canonical weight `name`; throws Error if absent.
  std::pair<const SafetensorsFile*, const TensorInfo*> tensor(std::string_view name) const;
};

// Opens every source; throws Error for an MoE source, a table with problems, or sources that differ.
std::vector<SourceModel> open_sources(const std::vector<std::filesystem::path>& dirs);

// Elements [first, first + n) of canonical weight `name`, converted to fp32.
void read_f32(const SourceModel& source, std::string_view name, uint64_t first, uint64_t n, float* out);
std::vector<float> read_f32(const SourceModel& source, std::string_view name);

// One 2-D weight as stored: rows × cols elements of `dtype`, row-major.
struct RawMatrix {
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0;
  std::vector<std::byte> bytes;
};
// Canonical 2-D weight `name` in its on-disk dtype (one pread).
RawMatrix read_raw(const SourceModel& source, std::string_view name);

}  // namespace upcycle::recipes
