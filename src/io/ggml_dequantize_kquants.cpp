// k-quant super-blocks (256 values) → float32 (see ggml_dequantize.h). Layouts, in ggml-common.h's
// field order:
//   Q2_K  scales[16] (low nibble: scale, high: min), qs[64] (2-bit), d, dmin              84 bytes
//   Q3_K  hmask[32] (third bits), qs[64] (low 2 bits), scales[12] (16 × 6-bit), d         110 bytes
//   Q4_K  d, dmin, scales[12] (8 × 6-bit scale + 8 × 6-bit min), qs[128] (4-bit)         144 bytes
//   Q5_K  d, dmin, scales[12], qh[32] (fifth bits), qs[128]                              176 bytes
//   Q6_K  ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d               210 bytes
// Values come in groups of 32 consecutive quants sharing a scale (16 for Q2_K, Q3_K, Q6_K); the
// scale products (d·sc, dmin·m) are rounded to float first and then applied, as ggml does.
#include <cstdint>

#include "io/ggml_dequantize.h"

namespace upcycle::ggml_detail {
namespace {

constexpr int kQK = 256;

uint8_t u8(const std::byte* p, int i) { return static_cast<uint8_t>(p[i]); }

// Q4_K / Q5_K: 6-bit scale and min of sub-block j (0..7) from the 12 packed scale bytes. Sub-blocks
// 0–3 keep theirs in the low 6 bits of bytes j and j+4; 4–7 take their low 4 bits from byte j+4 and
// their top 2 bits from the spare top bits of bytes j−4 (scale) and j (min).
void scale_min_k4(int j, const std::byte* s, int& scale, int& min) {
  if (j < 4) {
    scale = u8(s, j) & 63;
    min = u8(s, j + 4) & 63;
  } else {
    scale = (u8(s, j + 4) & 0x0F) | ((u8(s, j - 4) >> 6) << 4);
    min = (u8(s, j + 4) >> 4) | ((u8(s, j) >> 6) << 4);
  }
}

// Q3_K: signed 6-bit scale of group j (0..15): low 4 bits in the nibbles of bytes 0–7 (groups 0–7
// low nibbles, 8–15 high nibbles), top 2 bits in bytes 8–11 (byte 8 + j%4, bit pair j/4), biased by 32.
int scale_q3_k(int j, const std::byte* s) {
  const int low = j < 8 ? (u8(s, j) & 0x0F) : (u8(s, j - 8) >> 4);
  const int high = (u8(s, 8 + j % 4) >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

}  // namespace

void dequantize_q2_k(const std::byte* b, float* y) {
  const std::byte* scales = b;
  const std::byte* q = b + kQK / 16;
  const float d = load_f16(b + kQK / 16 + kQK / 4);
  const float dmin = load_f16(b + kQK / 16 + kQK / 4 + 2);
  int is = 0;
  for (int half = 0; half < kQK; half += 128, q += 32) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int part = 0; part < 2; ++part) {  // two groups of 16 per shift: q[0..15], q[16..31]
        const int sc = u8(scales, is++);
        const float dl = d * static_cast<float>(sc & 0x0F);
        const float ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l) {
          const float p = dl * static_cast<float>((u8(q, l + 16 * part) >> shift) & 3);
          *y++ = p - ml;
        }
      }
    }
  }
}

void dequantize_q3_k(const std::byte* b, float* y) {
  const std::byte* hmask = b;
  const std::byte* q = b + kQK / 8;
  const std::byte* scales = b + kQK / 8 + kQK / 4;
  const float d = load_f16(b + kQK / 8 + kQK / 4 + 12);
  int is = 0;
  int bit = 0;  // hmask bit of the current 32-value group pair
  for (int half = 0; half < kQK; half += 128, q += 32) {
    for (int shift = 0; shift < 8; shift += 2, ++bit) {
      for (int part = 0; part < 2; ++part) {
        const float dl = d * static_cast<float>(scale_q3_k(is++, scales));
        for (int l = 0; l < 16; ++l) {
          const int i = l + 16 * part;
          const int low = (u8(q, i) >> shift) & 3;
          const int value = low - (((u8(hmask, i) >> bit) & 1) ? 0 : 4);  // a clear high bit subtracts 4
          *y++ = dl * static_cast<float>(value);
        }
      }
    }
  }
}

void dequantize_q4_k(const std::byte* b, float* y) {
  const float d = load_f16(b);
  const float dmin = load_f16(b + 2);
  const std::byte* scales = b + 4;
  const std::byte* q = b + 16;
  for (int j = 0; j < 8; j += 2, q += 32) {  // 32 bytes: low nibbles = group j, high = group j+1
    for (int nib = 0; nib < 2; ++nib) {
      int sc = 0, m = 0;
      scale_min_k4(j + nib, scales, sc, m);
      const float dl = d * static_cast<float>(sc);
      const float ml = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        const float p = dl * static_cast<float>((u8(q, l) >> (4 * nib)) & 0x0F);
        *y++ = p - ml;
      }
    }
  }
}

void dequantize_q5_k(const std::byte* b, float* y) {
  const float d = load_f16(b);
  const float dmin = load_f16(b + 2);
  const std::byte* scales = b + 4;
  const std::byte* qh = b + 16;
  const std::byte* q = b + 16 + kQK / 8;
  for (int j = 0; j < 8; j += 2, q += 32) {
    for (int nib = 0; nib < 2; ++nib) {
      int sc = 0, m = 0;
      scale_min_k4(j + nib, scales, sc, m);
      const float dl = d * static_cast<float>(sc);
      const float ml = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        const int low = (u8(q, l) >> (4 * nib)) & 0x0F;
        const int high = (u8(qh, l) >> (j + nib)) & 1;  // group g's fifth bits are bit g of qh
        const float p = dl * static_cast<float>(low + 16 * high);
        *y++ = p - ml;
      }
    }
  }
}

void dequantize_q6_k(const std::byte* b, float* y) {
  const std::byte* ql = b;
  const std::byte* qh = b + kQK / 2;
  const std::byte* sc = b + kQK / 2 + kQK / 4;
  const float d = load_f16(b + kQK / 2 + kQK / 4 + kQK / 16);
  for (int half = 0; half < kQK; half += 128, ql += 64, qh += 32, sc += 8, y += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      // Four values per (l): ql nibbles of bytes l and l+32, top bits from successive pairs of qh[l].
      const int q1 = ((u8(ql, l) & 0x0F) | (((u8(qh, l) >> 0) & 3) << 4)) - 32;
      const int q2 = ((u8(ql, l + 32) & 0x0F) | (((u8(qh, l) >> 2) & 3) << 4)) - 32;
      const int q3 = ((u8(ql, l) >> 4) | (((u8(qh, l) >> 4) & 3) << 4)) - 32;
      const int q4 = ((u8(ql, l + 32) >> 4) | (((u8(qh, l) >> 6) & 3) << 4)) - 32;
      const auto scale = [&](int k) { return d * static_cast<float>(static_cast<int8_t>(u8(sc, is + k))); };
      y[l + 0] = scale(0) * static_cast<float>(q1);
      y[l + 32] = scale(2) * static_cast<float>(q2);
      y[l + 64] = scale(4) * static_cast<float>(q3);
      y[l + 96] = scale(6) * static_cast<float>(q4);
    }
  }
}

}  // namespace upcycle::ggml_detail
