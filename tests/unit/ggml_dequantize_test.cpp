// ggml block formats decoded from hand-made blocks whose values follow from the layout alone
// (ggml-common.h): which nibble, which high bit and which scale belong to which value. Bit-exactness
// against gguf-py's reference decoder on random blocks is tests/interop/test_gguf_import.py's job.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "io/ggml_dequantize.h"

namespace upcycle {
namespace {

std::vector<std::byte> block(size_t n) { return std::vector<std::byte>(n, std::byte{0}); }
void set_f16(std::vector<std::byte>& b, size_t at, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(b.data() + at, &h, 2);
}
void set(std::vector<std::byte>& b, size_t at, int v) { b[at] = static_cast<std::byte>(v); }

std::vector<float> decode(GgmlType type, const std::vector<std::byte>& b) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  EXPECT_EQ(b.size(), info.block_bytes);
  std::vector<float> y(info.block_size);
  dequantize_blocks(type, b.data(), y.data(), 1);
  return y;
}

TEST(GgmlDequantize, TypeTableMatchesGgmlCommon) {
  EXPECT_EQ(ggml_type_info(GgmlType::kQ4_K).block_bytes, 144u);
  EXPECT_EQ(ggml_type_info(GgmlType::kQ5_K).block_bytes, 176u);
  EXPECT_EQ(ggml_type_info(GgmlType::kQ6_K).block_bytes, 210u);
  EXPECT_EQ(ggml_type_info(GgmlType::kQ2_K).block_bytes, 84u);
  EXPECT_EQ(ggml_type_info(GgmlType::kQ3_K).block_bytes, 110u);
  EXPECT_EQ(ggml_type_info(4u), nullptr);  // Q4_2, removed from ggml
  EXPECT_FALSE(ggml_type_info(GgmlType::kIQ2_XXS).dequantizable);
  EXPECT_EQ(dequantizable_type_names(), "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K");
}

TEST(GgmlDequantize, Q4_0LowNibblesFirstThenHigh) {
  auto b = block(18);
  set_f16(b, 0, 0.5f);
  for (int j = 0; j < 16; ++j) set(b, 2 + j, (j & 0x0F) | ((15 - j) << 4));
  const auto y = decode(GgmlType::kQ4_0, b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.5f);
    EXPECT_EQ(y[j + 16], (15 - j - 8) * 0.5f);
  }
}

TEST(GgmlDequantize, Q4_1AddsTheMinimum) {
  auto b = block(20);
  set_f16(b, 0, 2.0f);
  set_f16(b, 2, -3.0f);
  set(b, 4, 0x51);  // value 0 = 1, value 16 = 5
  const auto y = decode(GgmlType::kQ4_1, b);
  EXPECT_EQ(y[0], -1.0f);
  EXPECT_EQ(y[16], 7.0f);
  EXPECT_EQ(y[1], -3.0f);
}

TEST(GgmlDequantize, Q5FifthBitsComeFromQh) {
  auto b = block(22);
  set_f16(b, 0, 1.0f);
  const uint32_t qh = (1u << 3) | (1u << 20);  // fifth bit of value 3 and of value 20
  std::memcpy(b.data() + 2, &qh, 4);
  set(b, 6 + 3, 0x07);  // value 3 low nibble 7; value 19 high nibble 0
  set(b, 6 + 4, 0x20);  // value 20 high nibble 2
  const auto y = decode(GgmlType::kQ5_0, b);
  EXPECT_EQ(y[3], 16 + 7 - 16);
  EXPECT_EQ(y[19], -16.0f);
  EXPECT_EQ(y[20], 16 + 2 - 16);
  EXPECT_EQ(y[0], -16.0f);

  auto b1 = block(24);
  set_f16(b1, 0, 0.25f);
  set_f16(b1, 2, 1.0f);
  std::memcpy(b1.data() + 4, &qh, 4);
  set(b1, 8 + 3, 0x07);
  const auto y1 = decode(GgmlType::kQ5_1, b1);
  EXPECT_EQ(y1[3], 23 * 0.25f + 1.0f);
  EXPECT_EQ(y1[0], 1.0f);
}

TEST(GgmlDequantize, Q8_0IsSignedBytesTimesScale) {
  auto b = block(34);
  set_f16(b, 0, 0.125f);
  set(b, 2, 0x80);  // -128
  set(b, 3, 0x7f);  // 127
  const auto y = decode(GgmlType::kQ8_0, b);
  EXPECT_EQ(y[0], -16.0f);
  EXPECT_EQ(y[1], 127 * 0.125f);
}

TEST(GgmlDequantize, Q4_KScalesAndMinsOfAllEightGroups) {
  auto b = block(144);
  set_f16(b, 0, 1.0f);   // d
  set_f16(b, 2, 0.5f);   // dmin
  // Groups 0–3: scale 10+j and min j in bytes j and j+4; groups 4–7: scale 36+j (0b10_0000 | low),
  // whose top bits sit in bytes j−4 (scale) and j (min).
  for (int j = 0; j < 4; ++j) {
    const int high_scale = 40 + j, high_min = 50 + j;  // groups 4+j
    set(b, 4 + j, (10 + j) | ((high_scale >> 4) << 6));
    set(b, 4 + j + 4, j | ((high_min >> 4) << 6));
    set(b, 4 + j + 8, (high_scale & 0x0F) | ((high_min & 0x0F) << 4));
  }
  for (int l = 0; l < 128; ++l) set(b, 16 + l, 0x31);  // every low nibble 1, high nibble 3
  const auto y = decode(GgmlType::kQ4_K, b);
  for (int g = 0; g < 8; ++g) {
    const int scale = g < 4 ? 10 + g : 40 + (g - 4);
    const int min = g < 4 ? g : 50 + (g - 4);
    const int q = g % 2 == 0 ? 1 : 3;  // even groups: low nibbles of their 32 bytes
    EXPECT_EQ(y[32 * g + 5], float(scale) * float(q) - 0.5f * float(min)) << "group " << g;
  }
}

TEST(GgmlDequantize, Q6_KSixBitValuesAndSignedScales) {
  auto b = block(210);
  set_f16(b, 208, 2.0f);
  for (int i = 0; i < 16; ++i) set(b, 192 + i, i - 8);  // int8 scales −8..7
  set(b, 0, 0x21);        // ql[0]: value 0 low 1, value 64 low 2
  set(b, 128, 0b11100100);  // qh[0]: values 0, 32, 64, 96 high bits 0, 1, 2, 3
  const auto y = decode(GgmlType::kQ6_K, b);
  EXPECT_EQ(y[0], 2.0f * -8 * (1 - 32));
  EXPECT_EQ(y[32], 2.0f * -6 * (16 - 32));
  EXPECT_EQ(y[64], 2.0f * -4 * (2 + 32 - 32));
  EXPECT_EQ(y[96], 2.0f * -2 * (48 - 32));
  EXPECT_EQ(y[128], 2.0f * 0 * -32);  // second half: scales 8..15 → −0 … 7
}

TEST(GgmlDequantize, PlainFloatTypes) {
  std::vector<std::byte> b(4);
  const uint16_t h[2] = {f32_to_f16(1.5f), f32_to_bf16(-2.25f)};
  std::memcpy(b.data(), &h[0], 2);
  float y = 0;
  dequantize_blocks(GgmlType::kF16, b.data(), &y, 1);
  EXPECT_EQ(y, 1.5f);
  std::memcpy(b.data(), &h[1], 2);
  dequantize_blocks(GgmlType::kBF16, b.data(), &y, 1);
  EXPECT_EQ(y, -2.25f);
}

}  // namespace
}  // namespace upcycle
