// Plain and legacy ggml formats → float32 (see ggml_dequantize.h), and the dispatch over all types.
// Legacy blocks hold 32 values: an f16 scale d (and for the _1 types an f16 offset m), then 4-bit
// quants packed two per byte — byte j holds value j in its low nibble and value j+16 in its high
// nibble — with Q5's fifth bits in a 32-bit little-endian word qh (bit j belongs to value j). Q8_0
// stores 32 signed bytes. Values are q·d (Q4_0 with q−8, Q5_0 with q−16) or q·d + m (Q4_1, Q5_1).
#include "io/ggml_dequantize.h"

#include <cstring>

#include "core/dtype.h"
#include "core/error.h"

namespace upcycle {
namespace ggml_detail {

float load_f16(const std::byte* p) {
  uint16_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return f16_to_f32(bits);
}

}  // namespace ggml_detail

namespace {

using ggml_detail::load_f16;

uint8_t byte_at(const std::byte* p, size_t i) { return static_cast<uint8_t>(p[i]); }

float load_bf16(const std::byte* p) {
  uint16_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return bf16_to_f32(bits);
}

uint32_t load_u32(const std::byte* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

constexpr int kQK = 32;  // values per legacy block

void q4_0(const std::byte* b, float* y) {  // d, qs[16]
  const float d = load_f16(b);
  const std::byte* qs = b + 2;
  for (int j = 0; j < kQK / 2; ++j) {
    const int x0 = (byte_at(qs, j) & 0x0F) - 8;
    const int x1 = (byte_at(qs, j) >> 4) - 8;
    y[j] = static_cast<float>(x0) * d;
    y[j + kQK / 2] = static_cast<float>(x1) * d;
  }
}

void q4_1(const std::byte* b, float* y) {  // d, m, qs[16]
  const float d = load_f16(b);
  const float m = load_f16(b + 2);
  const std::byte* qs = b + 4;
  for (int j = 0; j < kQK / 2; ++j) {
    const float p0 = static_cast<float>(byte_at(qs, j) & 0x0F) * d;  // rounded before the add, as in ggml
    const float p1 = static_cast<float>(byte_at(qs, j) >> 4) * d;
    y[j] = p0 + m;
    y[j + kQK / 2] = p1 + m;
  }
}

// The 5-bit value j of a Q5 block: low nibble from qs, fifth bit from qh.
int q5_value(const std::byte* qs, uint32_t qh, int j) {
  const int nibble = j < kQK / 2 ? (byte_at(qs, j) & 0x0F) : (byte_at(qs, j - kQK / 2) >> 4);
  return nibble | static_cast<int>(((qh >> j) & 1u) << 4);
}

void q5_0(const std::byte* b, float* y) {  // d, qh[4], qs[16]
  const float d = load_f16(b);
  const uint32_t qh = load_u32(b + 2);
  const std::byte* qs = b + 6;
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(q5_value(qs, qh, j) - 16) * d;
}

void q5_1(const std::byte* b, float* y) {  // d, m, qh[4], qs[16]
  const float d = load_f16(b);
  const float m = load_f16(b + 2);
  const uint32_t qh = load_u32(b + 4);
  const std::byte* qs = b + 8;
  for (int j = 0; j < kQK; ++j) {
    const float p = static_cast<float>(q5_value(qs, qh, j)) * d;
    y[j] = p + m;
  }
}

void q8_0(const std::byte* b, float* y) {  // d, qs[32] (int8)
  const float d = load_f16(b);
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(static_cast<int8_t>(byte_at(b + 2, j))) * d;
}

using BlockKernel = void (*)(const std::byte*, float*);

BlockKernel block_kernel(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_0: return q4_0;
    case GgmlType::kQ4_1: return q4_1;
    case GgmlType::kQ5_0: return q5_0;
    case GgmlType::kQ5_1: return q5_1;
    case GgmlType::kQ8_0: return q8_0;
    case GgmlType::kQ2_K: return ggml_detail::dequantize_q2_k;
    case GgmlType::kQ3_K: return ggml_detail::dequantize_q3_k;
    case GgmlType::kQ4_K: return ggml_detail::dequantize_q4_k;
    case GgmlType::kQ5_K: return ggml_detail::dequantize_q5_k;
    case GgmlType::kQ6_K: return ggml_detail::dequantize_q6_k;
    default: return nullptr;
  }
}

}  // namespace

void dequantize_blocks(GgmlType type, const std::byte* src, float* dst, uint64_t blocks) {
  if (blocks == 0) return;  // empty tensors may come with null pointers, which memcpy must not see
  switch (type) {
    case GgmlType::kF32: std::memcpy(dst, src, blocks * sizeof(float)); return;
    case GgmlType::kF16:
      f16_to_f32_n(src, dst, blocks);
      return;
    case GgmlType::kBF16:
      for (uint64_t i = 0; i < blocks; ++i) dst[i] = load_bf16(src + 2 * i);
      return;
    default: break;
  }
  const BlockKernel kernel = block_kernel(type);
  UPCYCLE_CHECK(kernel != nullptr, "dequantize_blocks called for " + std::string(ggml_type_info(type).name));
  const GgmlTypeInfo& info = ggml_type_info(type);
  for (uint64_t i = 0; i < blocks; ++i) kernel(src + i * info.block_bytes, dst + i * info.block_size);
}

}  // namespace upcycle
