// Normal stream v2: the Box–Muller transform of CounterRng's per-pair bits in fp32 with this file's own
// polynomial log and sin/cos, so that it vectorises (AVX-512, AVX2+FMA, chosen at run time) and gives
// the same bits on every path: only IEEE-exact operations (integer ops, conversions, add, mul, fma,
// sqrt), in the same order everywhere; no libm. The 64 bits per pair are v1's, mix64(key ^ mix64(pair)):
//   u1 = (float(b >> 33) + 0.5) · 2^-31 ∈ [2^-32, 1]     (31 bits: |z| ≤ sqrt(64 ln 2) ≈ 6.66)
//   θ  = 2π · (b mod 2^24) / 2^24                       (24 bits, reduced to an octant exactly)
//   z0 = sqrt(−2 ln u1) · cos θ,  z1 = sqrt(−2 ln u1) · sin θ
// Accuracy against double-precision libm is pinned in tests/unit/normal_v2_test.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"  // VectorPath

namespace upcycle {

// out[2k] = z0 and out[2k + 1] = z1 of pair pairs[k], for k < n; the fastest path this CPU has.
void normal_pairs_v2(uint64_t key, const uint64_t* pairs, size_t n, float* out);
// The same through one path, for tests; false (nothing written) when this CPU or build lacks it.
bool normal_pairs_v2_with(VectorPath path, uint64_t key, const uint64_t* pairs, size_t n, float* out);

// The pieces, exposed for the accuracy tests (the kernels inline the same code).
float normal_v2_log(float u);                              // ln u for u ∈ [2^-32, 1]
void normal_v2_sincos(uint32_t turn24, float& c, float& s);  // cos, sin of 2π · turn24 / 2^24
float normal_v2_uniform1(uint64_t bits);                   // u1 from a pair's bits

}  // namespace upcycle
