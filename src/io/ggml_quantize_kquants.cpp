// Q2_K..Q6_K super-blocks of 256 values, as ggml-quants.c's quantize_row_q*_K_ref computes them: each
// 16- or 32-value group gets its own scale (and minimum) by ggml's searches (make_qkx2_quants for the
// min+scale types Q2_K/Q4_K/Q5_K, make_qx_quants for Q6_K, make_q3_quants for Q3_K); the group scales
// are themselves quantised against one f16 super-scale, and the values re-quantised with the scales
// as stored. Bit-exactness with llama.cpp needs its float order kept exactly: sums run left to
// right in float, products associate as written in C (w*l*x is (w*l)*x), ints convert to float where
// C does, and nothing is fused (see ggml_quantize_blocks.h).
#include <algorithm>
#include <utility>

#include "io/ggml_quantize_blocks.h"

namespace upcycle::ggml_blocks {
namespace {

constexpr int kQK = 256;
constexpr float kGroupMaxEps = 1e-15f;  // GROUP_MAX_EPS: groups below it are all zero

// make_qkx2_quants: L[i] in [0, nmax] and scale, min (returned as -min in *the_min) minimising the
// weighted error, trying nstep+1 scales (rmin + rdelta·is + nmax) / (max - min) around the range.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill_n(L, n, uint8_t{0});
    *the_min = -min;
    return 0.0f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (!(D > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float cur_error = 0;
    for (int i = 0; i < n; ++i) {
      float diff = this_scale * Laux[i] + this_min - x[i];
      diff = use_mad ? std::fabs(diff) : diff * diff;
      cur_error += weights[i] * diff;
    }
    if (cur_error < best_error) {
      std::copy_n(Laux, n, L);
      best_error = cur_error;
      scale = this_scale;
      min = this_min;
    }
  }
  *the_min = -min;
  return scale;
}

// The value of largest magnitude with its sign, and that magnitude (the first on ties, as ggml scans).
std::pair<float, float> signed_absmax(const float* x, int n) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  return {max, amax};
}

// make_qx_quants with rmse_type 1 and no importance weights (Q6_K's only use): symmetric L in
// [0, 2·nmax) around nmax, weights x², trying 18 scales (nmax ± 0.1·is) / max.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  const auto [max, amax] = signed_absmax(x, n);
  if (amax < kGroupMaxEps) {
    std::fill_n(L, n, int8_t{0});
    return 0.0f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// make_q3_quants with do_rmse: L in [-nmax, nmax) from the max-magnitude scale, then up to 5 passes
// moving single values to the level that raises (Σw·x·l)²/Σw·l², with w = x²; L returned + nmax.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  const auto [max, amax] = signed_absmax(x, n);
  if (amax < kGroupMaxEps) {
    std::fill_n(L, n, int8_t{0});
    return 0.0f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (!(slx > 0)) continue;
      float sl2 = suml2 - w * L[i] * L[i];
      int new_l = nearest_int(x[i] * sl2 / slx);
      new_l = std::max(-nmax, std::min(nmax - 1, new_l));
      if (new_l == L[i]) continue;
      slx += w * x[i] * new_l;
      sl2 += w * new_l * new_l;
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = static_cast<int8_t>(new_l);
        sumlx = slx;
        suml2 = sl2;
        ++n_changed;
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Q4_K/Q5_K's 12 scale bytes: 8 six-bit scales and 8 six-bit mins (get_scale_min_k4's layout).
void pack_scales_mins_k4(const float* scales, const float* mins, float max_scale, float max_min, uint8_t* q) {
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < kQK / 32; ++j) {
    uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
    uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    ls = std::min<uint8_t>(63, ls);
    lm = std::min<uint8_t>(63, lm);
    if (j < 4) {
      q[j] = ls;
      q[j + 4] = lm;
    } else {
      q[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      q[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      q[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
}

void scale_min_k4(int j, const uint8_t* q, uint8_t& d, uint8_t& m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q4_K and Q5_K share everything but nmax, the search range and the bit packing: fills L[256] with
// the final quants and writes d, dmin and the scale bytes at `out`.
void q45_k_levels(const float* x, std::byte* out, int nmax, float rmin, int nstep, uint8_t* L) {
  uint8_t Laux[32];
  float weights[32], mins[kQK / 32], scales[kQK / 32];
  float max_scale = 0, max_min = 0;  // the min is subtracted, so scales are positive
  for (int j = 0; j < kQK / 32; ++j) {
    const float* xj = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xj[l] * xj[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xj[l]);
    scales[j] = make_qkx2_quants(32, nmax, xj, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  uint8_t* packed = u8(out + 4);
  pack_scales_mins_k4(scales, mins, max_scale, max_min, packed);
  store_f16(out, max_scale / 63.f);
  store_f16(out + 2, max_min / 63.f);
  for (int j = 0; j < kQK / 32; ++j) {
    uint8_t sc, m;
    scale_min_k4(j, packed, sc, m);
    const float d = load_f16(out) * sc;
    if (d == 0.0f) continue;
    const float dm = load_f16(out + 2) * m;
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    }
  }
}

// Four 2-bit values per byte: byte l of each 32-byte run holds values l, l+32, l+64, l+96 of a 128.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

}  // namespace

void q4_k_block(const float* x, std::byte* out) {  // f16 d, f16 dmin, scales[12], qs[128]
  uint8_t L[kQK];
  q45_k_levels(x, out, 15, -1.f, 20, L);
  uint8_t* q = u8(out + 16);
  for (int j = 0; j < kQK; j += 64, q += 32)
    for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
}

void q5_k_block(const float* x, std::byte* out) {  // f16 d, f16 dmin, scales[12], qh[32], qs[128]
  uint8_t L[kQK];
  q45_k_levels(x, out, 31, -0.5f, 15, L);
  uint8_t* qh = u8(out + 16);
  uint8_t* ql = u8(out + 48);
  std::memset(qh, 0, kQK / 8);
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < kQK; n += 64, ql += 32, m1 = static_cast<uint8_t>(m1 << 2), m2 = static_cast<uint8_t>(m2 << 2)) {
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j], l2 = L[n + j + 32];
      if (l1 > 15) {
        l1 -= 16;
        qh[j] |= m1;
      }
      if (l2 > 15) {
        l2 -= 16;
        qh[j] |= m2;
      }
      ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
  }
}

void q6_k_block(const float* x, std::byte* out) {  // ql[128], qh[64], int8 scales[16], f16 d
  int8_t L[kQK];
  float scales[kQK / 16];
  for (int ib = 0; ib < kQK / 16; ++ib) scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
  const auto [max_scale, max_abs_scale] = signed_absmax(scales, kQK / 16);
  std::memset(out, 0, 210);
  if (max_abs_scale < kGroupMaxEps) return;  // all zero, d = +0

  const float iscale = -128.f / max_scale;
  int8_t* sc = reinterpret_cast<int8_t*>(out + 192);
  store_f16(out + 208, 1 / iscale);
  for (int ib = 0; ib < kQK / 16; ++ib) sc[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
  for (int j = 0; j < kQK / 16; ++j) {
    const float d = load_f16(out + 208) * sc[j];
    if (d == 0.0f) continue;
    for (int ii = 0; ii < 16; ++ii) {
      const int l = nearest_int(x[16 * j + ii] / d);
      L[16 * j + ii] = static_cast<int8_t>(std::max(-32, std::min(31, l)) + 32);
    }
  }
  uint8_t* ql = u8(out);
  uint8_t* qh = u8(out + 128);
  for (int j = 0; j < kQK; j += 128, ql += 64, qh += 32) {
    for (int l = 0; l < 32; ++l) {
      const int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
      ql[l] = static_cast<uint8_t>(q1 | (q3 << 4));
      ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
      qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                   ((L[j + l + 96] >> 4) << 6));
    }
  }
}

void q2_k_block(const float* x, std::byte* out) {  // scales[16], qs[64], f16 d, f16 dmin
  uint8_t L[kQK], Laux[16];
  float weights[16], mins[kQK / 16], scales[kQK / 16];
  const float q4scale = 15.f;
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQK / 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  uint8_t* sc = u8(out);
  if (max_scale > 0) {
    const float iscale = q4scale / max_scale;
    for (int j = 0; j < kQK / 16; ++j) sc[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
    store_f16(out + 80, max_scale / q4scale);
  } else {
    std::memset(sc, 0, kQK / 16);
    store_f16(out + 80, 0.f);
  }
  if (max_min > 0) {
    const float iscale = q4scale / max_min;
    for (int j = 0; j < kQK / 16; ++j) sc[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
    store_f16(out + 82, max_min / q4scale);
  } else {
    store_f16(out + 82, 0.f);
  }
  for (int j = 0; j < kQK / 16; ++j) {
    const float d = load_f16(out + 80) * (sc[j] & 0xF);
    if (d == 0.0f) continue;
    const float dm = load_f16(out + 82) * (sc[j] >> 4);
    for (int ii = 0; ii < 16; ++ii) {
      const int l = nearest_int((x[16 * j + ii] + dm) / d);
      L[16 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(3, l)));
    }
  }
  pack_2bit(L, u8(out + 16));
}

void q3_k_block(const float* x, std::byte* out) {  // hmask[32], qs[64], scales[12], f16 d
  int8_t L[kQK];
  float scales[kQK / 16];
  for (int j = 0; j < kQK / 16; ++j) scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
  const float max_scale = signed_absmax(scales, kQK / 16).first;
  uint8_t* sc = u8(out + 96);
  std::memset(sc, 0, 12);
  if (max_scale != 0.0f) {
    const float iscale = -32.f / max_scale;
    for (int j = 0; j < kQK / 16; ++j) {
      int8_t l = static_cast<int8_t>(nearest_int(iscale * scales[j]));  // truncated to int8 first, as in ggml
      l = static_cast<int8_t>(std::max(-32, std::min(31, int{l})) + 32);
      if (j < 8) sc[j] = static_cast<uint8_t>(l & 0xF);
      else sc[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
      l = static_cast<int8_t>(l >> 4);
      sc[j % 4 + 8] |= static_cast<uint8_t>(l << (2 * (j / 4)));
    }
    store_f16(out + 108, 1 / iscale);
  } else {
    store_f16(out + 108, 0.f);
  }
  for (int j = 0; j < kQK / 16; ++j) {
    int s = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
    s = static_cast<int8_t>((s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
    const float d = load_f16(out + 108) * s;
    if (d == 0.0f) continue;
    for (int ii = 0; ii < 16; ++ii) {
      const int l = nearest_int(x[16 * j + ii] / d);
      L[16 * j + ii] = static_cast<int8_t>(std::max(-4, std::min(3, l)) + 4);
    }
  }
  uint8_t* hmask = u8(out);
  std::memset(hmask, 0, kQK / 8);
  int m = 0;
  uint8_t hm = 1;
  for (int j = 0; j < kQK; ++j) {  // the high bit of the first 32 values goes to bit 0, and so on
    if (L[j] > 3) {
      hmask[m] |= hm;
      L[j] = static_cast<int8_t>(L[j] - 4);
    }
    if (++m == kQK / 8) {
      m = 0;
      hm = static_cast<uint8_t>(hm << 1);
    }
  }
  uint8_t Lu[kQK];
  for (int j = 0; j < kQK; ++j) Lu[j] = static_cast<uint8_t>(L[j]);
  pack_2bit(Lu, u8(out + 32));
}

}  // namespace upcycle::ggml_blocks
