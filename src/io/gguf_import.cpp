// GGUF → safetensors weight streaming (see gguf_import.h).
#include "io/gguf_import.h"

#include <algorithm>
#include <span>

#include "core/error.h"
#include "core/progress.h"
#include "io/checkpoint_writer.h"
#include "io/ggml_dequantize.h"

namespace upcycle {
namespace {

// Undoes llama.cpp's rotary interleave on `heads` consecutive heads of `head_dim` units each (a unit
// is one row of a weight, one element of a bias): GGUF unit 2j+t of a head holds HF unit t·S/2 + j.
void unpermute_heads(const float* in, float* out, uint64_t heads, int64_t head_dim, uint64_t unit) {
  const uint64_t half = static_cast<uint64_t>(head_dim) / 2;
  const uint64_t head = static_cast<uint64_t>(head_dim) * unit;
  for (uint64_t h = 0; h < heads; ++h)
    for (uint64_t j = 0; j < half; ++j)
      for (uint64_t t = 0; t < 2; ++t)
        std::copy_n(in + h * head + (2 * j + t) * unit, unit, out + h * head + (t * half + j) * unit);
}

class WeightCopier {
 public:
  WeightCopier(const GgufFile& file, CheckpointWriter& writer, const GgufWeightsOptions& options, int64_t head_dim)
      : file_(file), writer_(writer), options_(options), head_dim_(head_dim) {}

  void copy(const WeightSpec& w, const GgufSource& s, Progress& progress) {
    const GgufTensorInfo& t = *s.tensor;
    const uint64_t row_len = static_cast<uint64_t>(t.row_length());
    const uint64_t row_bytes = t.row_bytes();
    const uint64_t blocks_per_row = row_len / ggml_type_info(t.type).block_size;
    const uint64_t numel = s.rows * row_len;
    UPCYCLE_CHECK(numel == shape_numel(w.shape), "GGUF source and HF shape disagree for " + w.name);

    // Chunks are whole rows; where heads are reordered, whole heads (a bias, one row holding every
    // head, is reordered in one piece).
    uint64_t unit_rows = 1, head_elems = 0;
    if (s.unpermute_heads > 0) {
      head_elems = numel / static_cast<uint64_t>(s.unpermute_heads);
      UPCYCLE_CHECK(head_elems % static_cast<uint64_t>(head_dim_) == 0, "heads do not tile " + w.name);
      unit_rows = head_elems % row_len == 0 ? head_elems / row_len : s.rows;
    }
    const uint64_t budget_rows = std::max<uint64_t>(1, options_.chunk_bytes / sizeof(float) / row_len);
    const uint64_t chunk_rows = std::max(unit_rows, budget_rows / unit_rows * unit_rows);
    const uint64_t out_bytes = dtype_size(options_.dtype);

    for (uint64_t r0 = 0; r0 < s.rows; r0 += chunk_rows) {
      const uint64_t n = std::min(chunk_rows, s.rows - r0);
      raw_.resize(n * row_bytes);
      file_.read_tensor_bytes(t, (s.first_row + r0) * row_bytes, n * row_bytes, raw_.data());
      values_.resize(n * row_len);
      dequantize_blocks(t.type, raw_.data(), values_.data(), n * blocks_per_row);
      std::span<const float> piece(values_.data(), values_.size());
      if (s.unpermute_heads > 0) {
        reordered_.resize(values_.size());
        const uint64_t heads = values_.size() / head_elems;
        unpermute_heads(values_.data(), reordered_.data(), heads, head_dim_, head_elems / static_cast<uint64_t>(head_dim_));
        piece = std::span<const float>(reordered_.data(), reordered_.size());
      }
      writer_.write_f32(w.name, piece, r0 * row_len);
      progress.advance(piece.size() * out_bytes);
    }
  }

 private:
  const GgufFile& file_;
  CheckpointWriter& writer_;
  const GgufWeightsOptions& options_;
  int64_t head_dim_;
  std::vector<std::byte> raw_;
  std::vector<float> values_, reordered_;
};

}  // namespace

std::vector<std::string> write_gguf_weights(const GgufFile& file, const GgufImportPlan& plan,
                                            const GgufWeightsOptions& options, const std::filesystem::path& dir) {
  UPCYCLE_CHECK(plan.weights.size() == plan.sources.size(), "GGUF plan without a source per weight");
  std::vector<TensorDecl> decls;
  uint64_t total_bytes = 0;
  for (const WeightSpec& w : plan.weights) {
    decls.push_back({w.name, options.dtype, w.shape});
    total_bytes += shape_numel(w.shape) * dtype_size(options.dtype);
  }
  CheckpointWriter writer(dir, std::move(decls), {options.max_shard_bytes, options.metadata});
  Progress progress("import", total_bytes, "bytes");
  WeightCopier copier(file, writer, options, plan.config.head_dim);
  for (size_t i = 0; i < plan.weights.size(); ++i) copier.copy(plan.weights[i], plan.sources[i], progress);
  progress.finish();
  return writer.finish();
}

}  // namespace upcycle
