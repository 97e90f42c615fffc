// Q4_0, Q4_1, Q5_0, Q5_1: one scale (and, for _1, a minimum) per 32 values, as ggml's reference
// quantisers compute them. Low nibbles hold values 0..15 of the block, high nibbles 16..31; Q5's
// fifth bits go to a 32-bit qh word. Quants are truncated after adding 8.5 / 16.5 / 0.5 (ggml's
// rounding, not nearest_int), so halves round up, as in ggml.
#include <algorithm>
#include <cfloat>

#include "io/ggml_quantize_blocks.h"

namespace upcycle::ggml_blocks {
namespace {

constexpr int kQK = 32;

// The value of largest magnitude, signed (the first one on ties), as the _0 types scale by it.
float signed_absmax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void min_max(const float* x, float& min, float& max) {
  min = FLT_MAX;
  max = -FLT_MAX;
  for (int j = 0; j < kQK; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
}

void store_qh(std::byte* p, uint32_t qh) { std::memcpy(p, &qh, 4); }

// ggml's `MIN(top, (int8_t)v)` stored in a uint8_t: truncation toward zero, then the upper clamp only.
uint8_t level(float v, int top) {
  return static_cast<uint8_t>(std::min(top, int{static_cast<int8_t>(truncate_to_int(v))}));
}

}  // namespace

void q4_0_block(const float* x, std::byte* out) {  // f16 d, qs[16]
  const float d = signed_absmax(x) / -8;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_f16(out, d);
  uint8_t* qs = u8(out + 2);
  for (int j = 0; j < kQK / 2; ++j) {
    const uint8_t lo = level(x[j] * id + 8.5f, 15);
    const uint8_t hi = level(x[j + kQK / 2] * id + 8.5f, 15);
    qs[j] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

void q4_1_block(const float* x, std::byte* out) {  // f16 d, f16 m, qs[16]
  float min, max;
  min_max(x, min, max);
  const float d = (max - min) / 15;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_f16(out, d);
  store_f16(out + 2, min);
  uint8_t* qs = u8(out + 4);
  for (int j = 0; j < kQK / 2; ++j) {
    const uint8_t lo = level((x[j] - min) * id + 0.5f, 15);
    const uint8_t hi = level((x[j + kQK / 2] - min) * id + 0.5f, 15);
    qs[j] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

void q5_0_block(const float* x, std::byte* out) {  // f16 d, qh (4 bytes), qs[16]
  const float d = signed_absmax(x) / -16;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_f16(out, d);
  uint8_t* qs = u8(out + 6);
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const uint8_t lo = level(x[j] * id + 16.5f, 31);
    const uint8_t hi = level(x[j + kQK / 2] * id + 16.5f, 31);
    qs[j] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
    qh |= ((lo & 0x10u) >> 4) << j;
    qh |= ((hi & 0x10u) >> 4) << (j + kQK / 2);
  }
  store_qh(out + 2, qh);
}

void q5_1_block(const float* x, std::byte* out) {  // f16 d, f16 m, qh (4 bytes), qs[16]
  float min, max;
  min_max(x, min, max);
  const float d = (max - min) / 31;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_f16(out, d);
  store_f16(out + 2, min);
  uint8_t* qs = u8(out + 8);
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {  // no clamp to 31 here, as in ggml
    const uint8_t lo = static_cast<uint8_t>(truncate_to_int((x[j] - min) * id + 0.5f));
    const uint8_t hi = static_cast<uint8_t>(truncate_to_int((x[j + kQK / 2] - min) * id + 0.5f));
    qs[j] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
    qh |= ((lo & 0x10u) >> 4) << j;
    qh |= ((hi & 0x10u) >> 4) << (j + kQK / 2);
  }
  store_qh(out + 4, qh);
}

}  // namespace upcycle::ggml_blocks
