// dtype names and float conversions: exhaustive round trips and hand-computed rounding cases.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

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
