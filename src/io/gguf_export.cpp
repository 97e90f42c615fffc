// HF checkpoint → GGUF tensor bytes (see gguf_export.h): each canonical weight is read from its
// safetensors shard with pread in chunks of whole rows (whole heads where rows are interleaved),
// widened to float32, reordered and converted to the GGUF type, and handed to the writer at its
// offset in the (possibly stacked) GGUF tensor. Memory holds one chunk, never a tensor.
#include "io/gguf_export.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file_util.h"
#include "io/ggml_quantize.h"

namespace upcycle {
namespace {

constexpr uint64_t kChunkFloats = 2u << 20;  // 8 MB of float32 per chunk

// llama.cpp's rotary interleave (convert_hf_to_gguf.py LlamaModel.permute) on `heads` heads of
// `head_dim` units (rows of a weight, elements of a bias): HF unit t·S/2 + j goes to 2j + t.
void interleave_heads(const float* in, float* out, uint64_t heads, uint64_t head_dim, uint64_t unit) {
  const uint64_t half = head_dim / 2, head = head_dim * unit;
  for (uint64_t h = 0; h < heads; ++h)
    for (uint64_t t = 0; t < 2; ++t)
      for (uint64_t j = 0; j < half; ++j)
        std::copy_n(in + h * head + (t * half + j) * unit, unit, out + h * head + (2 * j + t) * unit);
}

class TensorStreamer {
 public:
  TensorStreamer(const GgufExportPlan& plan, const Checkpoint& ckpt, const WeightTable& table,
                 const GgufWriter::TensorSink& sink)
      : plan_(plan), ckpt_(ckpt), table_(table), sink_(sink) {}

  void stream(const GgufExportTensor& t) {
    uint64_t out_offset = 0;
    for (size_t part : t.parts) out_offset += stream_part(t, plan_.weights[part], out_offset);
  }

 private:
  // Streams one canonical weight into `t` at byte `out_offset`; returns the bytes written.
  uint64_t stream_part(const GgufExportTensor& t, const WeightSpec& w, uint64_t out_offset) {
    const WeightLocation* loc = table_.locate(w.name);
    UPCYCLE_CHECK(loc != nullptr, "weight table without " + w.name);
    const TensorRef* ref = ckpt_.find(loc->tensor);
    UPCYCLE_CHECK(ref != nullptr, "checkpoint without " + loc->tensor);
    const DType src_type = ref->info->dtype;
    if (!dtype_is_float(src_type))
      throw Error("tensor '" + loc->tensor + "' has dtype " + std::string(dtype_name(src_type)) + ", not a float",
                  ref->file->path().string());
    const uint64_t elem = dtype_size(src_type);
    const uint64_t numel = shape_numel(w.shape);
    const uint64_t row_len = static_cast<uint64_t>(t.ne[0]);
    const uint64_t rows = numel / row_len;
    const GgmlTypeInfo& out_type = ggml_type_info(t.type);
    const uint64_t out_row_bytes = row_len / out_type.block_size * out_type.block_bytes;

    uint64_t unit_rows = 1, head_elems = 0;
    const uint64_t head_dim = static_cast<uint64_t>(plan_.config.head_dim);
    if (t.interleave_heads > 0) {
      head_elems = numel / static_cast<uint64_t>(t.interleave_heads);
      unit_rows = head_elems % row_len == 0 ? head_elems / row_len : rows;
    }
    const uint64_t budget = std::max<uint64_t>(1, kChunkFloats / row_len);
    const uint64_t chunk_rows = std::max(unit_rows, budget / unit_rows * unit_rows);
    const uint64_t src_base = ref->file->data_offset() + ref->info->begin + loc->element_offset * elem;
    for (uint64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
      const uint64_t n = std::min(chunk_rows, rows - r0), count = n * row_len;
      raw_.resize(count * elem);
      pread_all(ref->file->fd(), raw_.data(), raw_.size(), src_base + r0 * row_len * elem, ref->file->path());
      values_.resize(count);
      convert_floats(raw_.data(), src_type, values_.data(), DType::kF32, count);
      const float* piece = values_.data();
      if (t.interleave_heads > 0) {
        reordered_.resize(count);
        interleave_heads(values_.data(), reordered_.data(), count / head_elems, head_dim, head_elems / head_dim);
        piece = reordered_.data();
      }
      if (t.type != GgmlType::kQ8_0 && ggml_type_info(t.type).block_size > 1) {
        // A NaN or inf has no quantisation (llama.cpp's quantiser stops where its scales come out
        // non-finite); Q8_0 and the float types keep it, as gguf-py's converter does.
        const float* bad = std::find_if(piece, piece + count, [](float v) { return !std::isfinite(v); });
        if (bad != piece + count)
          throw Error("tensor '" + loc->tensor + "' has a non-finite value (" + std::to_string(*bad) + "), which " +
                          std::string(ggml_type_info(t.type).name) + " cannot quantise",
                      ref->file->path().string());
      }
      out_.resize(n * out_row_bytes);
      quantize_values(t.type, piece, out_.data(), count);
      sink_(t.name, out_, out_offset + r0 * out_row_bytes);
    }
    return rows * out_row_bytes;
  }

  const GgufExportPlan& plan_;
  const Checkpoint& ckpt_;
  const WeightTable& table_;
  const GgufWriter::TensorSink& sink_;
  std::vector<std::byte> raw_, out_;
  std::vector<float> values_, reordered_;
};

}  // namespace

void stream_gguf_tensors(const GgufExportPlan& plan, const Checkpoint& checkpoint, const WeightTable& table,
                         const GgufWriter::TensorSink& sink) {
  TensorStreamer streamer(plan, checkpoint, table, sink);
  for (const auto& t : plan.tensors) streamer.stream(t);
}

}  // namespace upcycle
