// float32 → F32/F16/BF16/Q8_0 (see ggml_quantize.h).
#include "io/ggml_quantize.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "core/dtype.h"
#include "core/error.h"

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

}  // namespace

bool ggml_quantizable(GgmlType type) {
  return type == GgmlType::kF32 || type == GgmlType::kF16 || type == GgmlType::kBF16 || type == GgmlType::kQ8_0;
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
      for (uint64_t i = 0; i < n; ++i) store_u16(dst + 2 * i, f32_to_bf16(src[i]));
      return;
    case GgmlType::kQ8_0:
      UPCYCLE_CHECK(n % 32 == 0, "Q8_0 needs whole blocks");
      for (uint64_t b = 0; b < n / 32; ++b) q8_0_block(src + 32 * b, dst + 34 * b);
      return;
    default: UPCYCLE_CHECK(false, "quantize_values: unsupported type " + std::string(ggml_type_info(type).name));
  }
}

}  // namespace upcycle
