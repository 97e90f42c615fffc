// float32 → every type ggml_quantizable names (see ggml_quantize.h); the block formats beyond Q8_0 are
// in ggml_quantize_legacy.cpp and ggml_quantize_kquants.cpp.
#include "io/ggml_quantize.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "core/dtype.h"
#include "core/error.h"
#include "io/ggml_quantize_blocks.h"

namespace upcycle {
namespace {

void store_u16(std::byte* p, uint16_t v) { std::memcpy(p, &v, 2); }

// One Q8_0 block: f16 d, then 32 int8 quants.
void q8_0_block(const float* x, std::byte* out) {
  float amax = 0.0f;
  bool finite = true;
  for (int j = 0; j < 32; ++j) {
    const float v = std::fabs(x[j]);
    amax = amax > v ? amax : v;  // ggml's MAX(a, b): a NaN is kept, like numpy's max
    finite &= v <= std::numeric_limits<float>::max();
  }
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_u16(out, f32_to_f16(d));
  if (finite && id <= std::numeric_limits<float>::max()) {
    // Every x·id is then finite with |x·id| ≤ 127 (+ rounding), where truncation toward zero and the
    // fraction left are exact, so stepping away from zero on a fraction ≥ ½ is exactly roundf. Without
    // branches the loop vectorizes; baseline x86-64 has no rounding instruction, and roundf is a libm
    // call per value (most of Q8_0 export's CPU time before).
    for (int j = 0; j < 32; ++j) {
      const float scaled = x[j] * id;  // rounded to float before rounding to an integer, as in ggml
      int32_t q = static_cast<int32_t>(scaled);
      const float frac = scaled - static_cast<float>(q);
      q += static_cast<int32_t>(frac >= 0.5f) - static_cast<int32_t>(frac <= -0.5f);
      out[2 + j] = static_cast<std::byte>(static_cast<int8_t>(q));
    }
    return;
  }
  for (int j = 0; j < 32; ++j) {  // NaN or Inf in the block, or 1/d overflowed: ggml's formula as written
    const float scaled = x[j] * id;
    const float q = std::isnan(scaled) ? 0.0f : std::roundf(scaled);
    out[2 + j] = static_cast<std::byte>(static_cast<int8_t>(q));
  }
}

using BlockQuantizer = void (*)(const float*, std::byte*);

BlockQuantizer block_quantizer(GgmlType type) {
  switch (type) {
    case GgmlType::kQ8_0: return q8_0_block;
    case GgmlType::kQ4_0: return ggml_blocks::q4_0_block;
    case GgmlType::kQ4_1: return ggml_blocks::q4_1_block;
    case GgmlType::kQ5_0: return ggml_blocks::q5_0_block;
    case GgmlType::kQ5_1: return ggml_blocks::q5_1_block;
    case GgmlType::kQ2_K: return ggml_blocks::q2_k_block;
    case GgmlType::kQ3_K: return ggml_blocks::q3_k_block;
    case GgmlType::kQ4_K: return ggml_blocks::q4_k_block;
    case GgmlType::kQ5_K: return ggml_blocks::q5_k_block;
    case GgmlType::kQ6_K: return ggml_blocks::q6_k_block;
    default: return nullptr;
  }
}

}  // namespace

bool ggml_quantizable(GgmlType type) {
  return type == GgmlType::kF32 || type == GgmlType::kF16 || type == GgmlType::kBF16 || block_quantizer(type) != nullptr;
}

GgmlType ggml_row_fallback(GgmlType type, int64_t row_length) {
  if (row_length % ggml_type_info(type).block_size == 0) return type;
  GgmlType fallback = GgmlType::kF16;
  switch (type) {  // llama-quant.cpp tensor_type_fallback
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K: fallback = GgmlType::kQ4_0; break;
    case GgmlType::kQ4_K: fallback = GgmlType::kQ5_0; break;
    case GgmlType::kQ5_K: fallback = GgmlType::kQ5_1; break;
    case GgmlType::kQ6_K: fallback = GgmlType::kQ8_0; break;
    default: break;
  }
  return row_length % ggml_type_info(fallback).block_size == 0 ? fallback : GgmlType::kF16;
}

void quantize_values(GgmlType type, const float* src, std::byte* dst, uint64_t n) {
  switch (type) {
    case GgmlType::kF32:
      if (n) std::memcpy(dst, src, n * sizeof(float));
      return;
    case GgmlType::kF16:
      f32_to_f16_n(src, dst, n);
      return;
    case GgmlType::kBF16:
      f32_to_bf16_n(src, dst, n);
      return;
    default: break;
  }
  const BlockQuantizer block = block_quantizer(type);
  const GgmlTypeInfo& info = ggml_type_info(type);
  UPCYCLE_CHECK(block != nullptr, "quantize_values: unsupported type " + std::string(info.name));
  UPCYCLE_CHECK(n % info.block_size == 0, std::string(info.name) + " needs whole blocks");
  for (uint64_t b = 0; b < n / info.block_size; ++b) block(src + info.block_size * b, dst + info.block_bytes * b);
}

}  // namespace upcycle
