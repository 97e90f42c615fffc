// dtype names and float conversions: exhaustive round trips and hand-computed rounding cases.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "core/dtype.h"

namespace upcycle {
namespace {

TEST(DType, NamesRoundTrip) {
  for (auto name : {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL"}) {
    auto dtype = dtype_from_name(name);
    ASSERT_TRUE(dtype.has_value()) << name;
    EXPECT_EQ(dtype_name(*dtype), name);
  }
  EXPECT_FALSE(dtype_from_name("F8_E4M3"));
  EXPECT_TRUE(dtype_is_known_unsupported("F8_E4M3"));
  EXPECT_FALSE(dtype_is_known_unsupported("F17"));
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kI64), 8u);
}

TEST(DType, Bf16ExhaustiveRoundTrip) {
  for (uint32_t b = 0; b < 65536; ++b) {
    float f = bf16_to_f32(static_cast<uint16_t>(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
      continue;
    }
    EXPECT_EQ(f32_to_bf16(f), b) << b;
  }
}

TEST(DType, F16ExhaustiveRoundTrip) {
  for (uint32_t b = 0; b < 65536; ++b) {
    float f = f16_to_f32(static_cast<uint16_t>(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    EXPECT_EQ(f32_to_f16(f), b) << b;
  }
}

// The array conversions (F16C, table) are the scalar ones bit for bit: every f16 value widened; and
// narrowed, every f16 value, its neighbours one f32 ulp away, each halfway point between consecutive
// f16 values and its neighbours (the ties), NaNs with payloads, and a sweep of all f32 bit patterns.
// An odd count also exercises the scalar tail after the 8-wide loop.
TEST(DType, F16ArrayConversionsMatchScalar) {
  std::vector<uint16_t> halves(65536);
  for (uint32_t h = 0; h < 65536; ++h) halves[h] = static_cast<uint16_t>(h);
  std::vector<float> widened(halves.size());
  f16_to_f32_n(halves.data(), widened.data(), halves.size());
  for (uint32_t h = 0; h < 65536; ++h)
    ASSERT_EQ(std::bit_cast<uint32_t>(widened[h]), std::bit_cast<uint32_t>(f16_to_f32(halves[h]))) << h;

  std::vector<uint32_t> bits;
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint32_t f = std::bit_cast<uint32_t>(f16_to_f32(static_cast<uint16_t>(h)));
    const uint32_t mid = f + (1u << 12);  // halfway to the next f16 (for normal f16 values)
    for (uint32_t v : {f - 1, f, f + 1, mid - 1, mid, mid + 1}) bits.push_back(v);
  }
  for (uint64_t b = 0; b < (1ull << 32); b += 65521) bits.push_back(static_cast<uint32_t>(b));
  for (uint32_t payload : {1u, 0x1fffu, 0x2000u, 0x3fffffu, 0x400000u, 0x7fffffu})
    for (uint32_t sign : {0u, 0x80000000u}) bits.push_back(sign | 0x7f800000u | payload);
  if (bits.size() % 2 == 0) bits.push_back(0x3f800000u);
  std::vector<float> values(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) values[i] = std::bit_cast<float>(bits[i]);
  std::vector<uint16_t> narrowed(values.size());
  f32_to_f16_n(values.data(), narrowed.data(), values.size());
  for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(narrowed[i], f32_to_f16(values[i])) << std::hex << bits[i];
}

// f32 → bf16 in arrays is f32_to_bf16 bit for bit on every implementation this CPU can run (portable,
// AVX2, AVX-512): every bf16 value with the low halves that decide rounding (ties, one either side,
// all ones), subnormals, NaNs with payloads, a sweep of all f32 bit patterns, at an odd length and an
// odd start so the vector loops' tails and unaligned loads are covered.
TEST(DType, Bf16ArrayConversionMatchesScalarOnEveryPath) {
  std::vector<uint32_t> bits;
  for (uint32_t b = 0; b < 65536; ++b)
    for (uint32_t low : {0u, 1u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu}) bits.push_back(b << 16 | low);
  for (uint64_t b = 0; b < (1ull << 32); b += 65521) bits.push_back(static_cast<uint32_t>(b));
  if (bits.size() % 2 == 0) bits.push_back(0x3f800000u);
  std::vector<float> values(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) values[i] = std::bit_cast<float>(bits[i]);
  int paths_run = 0;
  for (VectorPath path : {VectorPath::kPortable, VectorPath::kAvx2, VectorPath::kAvx512}) {
    std::vector<uint16_t> narrowed(values.size() + 1, 0xabcd);
    if (!f32_to_bf16_n_with(path, values.data() + 1, narrowed.data() + 1, values.size() - 1)) continue;
    ++paths_run;
    EXPECT_EQ(narrowed[0], 0xabcd);  // nothing written before the start
    for (size_t i = 1; i < values.size(); ++i)
      ASSERT_EQ(narrowed[i], f32_to_bf16(values[i])) << std::hex << bits[i] << " path " << int(path);
  }
  EXPECT_GE(paths_run, 1);
  std::vector<uint16_t> dispatched(values.size());
  convert_floats(values.data(), DType::kF32, dispatched.data(), DType::kBF16, values.size());
  for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(dispatched[i], f32_to_bf16(values[i])) << std::hex << bits[i];
}

// Conversions between 16-bit types and from F64 go through fp32 blocks: the same bits as the scalar
// composition, for every bf16 and f16 value (65,536 each: more than one block, and not a multiple of it
// after dropping the first) and for doubles whose rounding to float matters.
TEST(DType, NarrowingThroughFp32BlocksMatchesScalarComposition) {
  std::vector<uint16_t> all(65535);
  for (uint32_t h = 1; h < 65536; ++h) all[h - 1] = static_cast<uint16_t>(h);
  std::vector<uint16_t> out(all.size());
  convert_floats(all.data(), DType::kBF16, out.data(), DType::kF16, all.size());
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(out[i], f32_to_f16(bf16_to_f32(all[i]))) << all[i];
  convert_floats(all.data(), DType::kF16, out.data(), DType::kBF16, all.size());
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(out[i], f32_to_bf16(f16_to_f32(all[i]))) << all[i];
  std::vector<double> doubles;
  for (int k = -30; k <= 30; ++k) doubles.push_back(std::ldexp(1.0 + std::ldexp(1.0, -24) + 1e-12, k) * (k % 2 ? -1 : 1));
  doubles.push_back(1e300), doubles.push_back(-1e-300), doubles.push_back(std::nan(""));
  std::vector<uint16_t> from_f64(doubles.size());
  for (DType dst : {DType::kF16, DType::kBF16}) {
    convert_floats(doubles.data(), DType::kF64, from_f64.data(), dst, doubles.size());
    for (size_t i = 0; i < doubles.size(); ++i) {
      const float f = float(doubles[i]);
      ASSERT_EQ(from_f64[i], dst == DType::kF16 ? f32_to_f16(f) : f32_to_bf16(f)) << doubles[i];
    }
  }
}

// Rounding to nearest even, checked against a double-precision reference: for every bf16 value and
// a few points between it and its neighbour, the nearest representable (ties to even mantissa) wins.
TEST(DType, Bf16RoundsToNearestEven) {
  for (uint32_t b = 0; b < 0x7f80; b += 7) {
    double lo = bf16_to_f32(static_cast<uint16_t>(b));
    double hi = bf16_to_f32(static_cast<uint16_t>(b + 1));
    for (double t : {0.25, 0.5, 0.75}) {
      float x = static_cast<float>(lo + (hi - lo) * t);
      uint16_t expect = t < 0.5 ? b : t > 0.5 ? b + 1 : ((b & 1) ? b + 1 : b);
      EXPECT_EQ(f32_to_bf16(x), expect) << b << " t=" << t;
    }
  }
}

TEST(DType, F16HandCases) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);                 // largest finite
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);                 // halfway to 2^16 rounds up to inf
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);    // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);    // tie with zero: even → 0
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);    // above the tie → 1
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);    // 1.5 ulp tie → even (2)
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie → even
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie → even (up)
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x7f7fffffu)), 0x7f80);  // max float rounds to inf
}

TEST(DType, ConvertFloatsBetweenAll) {
  const float values[] = {0.0f, -1.5f, 3.140625f, 1e-3f, -6.0e4f};
  for (DType a : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
    for (DType b : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
      std::vector<std::byte> src(5 * dtype_size(a)), dst(5 * dtype_size(b));
      std::vector<float> back(5);
      convert_floats(values, DType::kF32, src.data(), a, 5);
      convert_floats(src.data(), a, dst.data(), b, 5);
      convert_floats(dst.data(), b, back.data(), DType::kF32, 5);
      for (int i = 0; i < 5; ++i) {
        float tol = (a == DType::kBF16 || b == DType::kBF16) ? 1e-2f : (a == DType::kF16 || b == DType::kF16) ? 1e-3f : 0;
        EXPECT_NEAR(back[i], values[i], std::abs(values[i]) * tol) << dtype_name(a) << "->" << dtype_name(b);
      }
    }
  }
}

}  // namespace
}  // namespace upcycle
