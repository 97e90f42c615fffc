// Streamed random initialisation (see random_init.h).
#include "io/random_init.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "io/checkpoint_writer.h"

namespace upcycle {
namespace {

enum class InitKind { kNormal, kOnes, kZeros };

InitKind init_kind(WeightRole role) {
  switch (role) {
    case WeightRole::kAttnNorm:
    case WeightRole::kMlpNorm:
    case WeightRole::kFinalNorm:
    case WeightRole::kQNorm:
    case WeightRole::kKNorm: return InitKind::kOnes;
    case WeightRole::kQBias:
    case WeightRole::kKBias:
    case WeightRole::kVBias:
    case WeightRole::kOBias:
    case WeightRole::kRouterBias: return InitKind::kZeros;  // HF's _init_weights: zeros_(e_score_correction_bias)
    default: return InitKind::kNormal;
  }
}

// The embedding row HF zeroes (nn.Embedding padding_idx = pad_token_id), or -1.
int64_t padding_row(const ModelConfig& config) {
  auto it = config.raw.find("pad_token_id");
  if (it == config.raw.end() || !it->is_number_integer()) return -1;
  int64_t pad = it->get<int64_t>();
  return (pad >= 0 && pad < config.vocab_size) ? pad : -1;
}

// Fills values[0..n) with elements [first, first+n) of `spec`.
void fill_values(const ModelConfig& config, const WeightSpec& spec, const CounterRng& rng, uint64_t first, size_t n,
                 float* values) {
  switch (init_kind(spec.role)) {
    case InitKind::kOnes: std::fill(values, values + n, 1.0f); return;
    case InitKind::kZeros: std::fill(values, values + n, 0.0f); return;
    case InitKind::kNormal: break;
  }
  rng.fill_normal(values, first, n, 0.0f, static_cast<float>(config.initializer_range));
  int64_t pad = spec.role == WeightRole::kEmbed ? padding_row(config) : -1;
  if (pad >= 0) {
    uint64_t row_begin = static_cast<uint64_t>(pad) * static_cast<uint64_t>(config.hidden_size);
    uint64_t row_end = row_begin + static_cast<uint64_t>(config.hidden_size);
    for (uint64_t i = std::max(first, row_begin); i < std::min(first + n, row_end); ++i) values[i - first] = 0.0f;
  }
}

}  // namespace

float random_init_value(const ModelConfig& config, const WeightSpec& spec, uint64_t seed, uint64_t index) {
  float value = 0;
  fill_values(config, spec, CounterRng(seed, spec.name), index, 1, &value);
  return value;
}

std::vector<std::string> write_random_weights(const ModelConfig& config, const RandomInitOptions& options,
                                              const std::filesystem::path& dir) {
  std::vector<TensorDecl> decls;
  std::map<std::string, Shape, std::less<>> disk_shapes;
  uint64_t total_elements = 0;
  for (auto& t : disk_tensors(config, options.layout)) {
    disk_shapes[t.name] = t.shape;
    total_elements += shape_numel(t.shape);
    decls.push_back({t.name, config.dtype, t.shape});
  }
  WeightTable table = WeightTable::build(config, disk_shapes);
  UPCYCLE_CHECK(table.ok(), "disk_tensors and WeightTable disagree: " + (table.problems().empty() ? "" : table.problems()[0]));

  CheckpointWriter writer(dir, std::move(decls), {options.max_shard_bytes, options.metadata});
  const size_t elem = dtype_size(config.dtype);
  Progress progress("init", total_elements * elem, "bytes");
  constexpr size_t kBlock = size_t{1} << 22;  // elements generated per write: bounded memory
  constexpr size_t kPiece = size_t{1} << 16;  // elements per parallel task
  std::vector<float> values(kBlock);
  std::vector<std::byte> encoded(kBlock * elem);
  for (const auto& spec : table.weights()) {
    const WeightLocation* where = table.locate(spec.name);
    CounterRng rng(options.seed, spec.name);
    const uint64_t n = shape_numel(spec.shape);
    for (uint64_t first = 0; first < n; first += kBlock) {
      const size_t count = static_cast<size_t>(std::min<uint64_t>(kBlock, n - first));
      const int64_t pieces = static_cast<int64_t>((count + kPiece - 1) / kPiece);
#pragma omp parallel for schedule(static)
      for (int64_t p = 0; p < pieces; ++p) {
        size_t begin = static_cast<size_t>(p) * kPiece, len = std::min(kPiece, count - begin);
        fill_values(config, spec, rng, first + begin, len, values.data() + begin);
        convert_floats(values.data() + begin, DType::kF32, encoded.data() + begin * elem, config.dtype, len);
      }
      writer.write(where->tensor, {encoded.data(), count * elem}, (where->element_offset + first) * elem);
      if (options.show_progress) progress.advance(count * elem);
    }
  }
  write_placeholder_tensors(writer, config);
  auto files = writer.finish();
  if (options.show_progress) progress.finish();
  return files;
}

}  // namespace upcycle
