// One block of each quantised ggml type, as ggml-quants.c's quantize_row_*_ref computes it (the path
// llama.cpp's quantiser takes without an importance matrix), and the scalar helpers they share. Every
// float operation keeps ggml's order and precision: these files are compiled with -ffp-contract=off,
// so a*b+c is never fused into one rounding (ggml-base is built without FMA, see CMakeLists.txt).
// Internal to io/: callers use quantize_values (ggml_quantize.h).
#pragma once

#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace upcycle::ggml_blocks {

// ggml's nearest_int: adding 1.5·2^23 leaves the integer in the low mantissa bits, rounded half to
// even by the FPU (valid for |f| < 2^22, as ggml asserts).
inline int nearest_int(float f) {
  const float v = f + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return (bits & 0x007fffff) - 0x00400000;
}

// C's float → integer conversion (toward zero) as x86-64 performs it (cvttss2si): out of range or
// NaN gives INT_MIN. Defined here so that no input is undefined behaviour.
inline int truncate_to_int(float f) {
  return f > -2147483648.0f && f < 2147483648.0f ? static_cast<int>(f) : INT_MIN;
}

inline void store_f16(std::byte* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}
inline float load_f16(const std::byte* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}
inline uint8_t* u8(std::byte* p) { return reinterpret_cast<uint8_t*>(p); }

// 32-value blocks (ggml-quants.c quantize_row_q{4,5}_{0,1}_ref).
void q4_0_block(const float* x, std::byte* out);
void q4_1_block(const float* x, std::byte* out);
void q5_0_block(const float* x, std::byte* out);
void q5_1_block(const float* x, std::byte* out);
// 256-value super-blocks (quantize_row_q{2,3,4,5,6}_K_ref).
void q2_k_block(const float* x, std::byte* out);
void q3_k_block(const float* x, std::byte* out);
void q4_k_block(const float* x, std::byte* out);
void q5_k_block(const float* x, std::byte* out);
void q6_k_block(const float* x, std::byte* out);

}  // namespace upcycle::ggml_blocks
