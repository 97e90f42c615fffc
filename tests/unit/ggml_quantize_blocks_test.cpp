// The block quantisers beyond Q8_0 on cases whose bytes or values follow by hand from ggml's
// reference algorithms, plus a round trip through the (separately checked) dequantiser. Bit-exactness
// with llama.cpp on real and random models is tests/interop/test_gguf_kquants.py's job.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "io/ggml_dequantize.h"
#include "io/ggml_quantize.h"

namespace upcycle {
namespace {

constexpr GgmlType kKQuants[] = {GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K};
constexpr GgmlType kLegacy[] = {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1};

std::vector<std::byte> quantize(GgmlType type, const std::vector<float>& x) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  std::vector<std::byte> out(x.size() / info.block_size * info.block_bytes, std::byte{0xAA});
  quantize_values(type, x.data(), out.data(), x.size());
  return out;
}

std::vector<float> round_trip(GgmlType type, const std::vector<float>& x) {
  const auto q = quantize(type, x);
  std::vector<float> y(x.size());
  dequantize_blocks(type, q.data(), y.data(), x.size() / ggml_type_info(type).block_size);
  return y;
}

uint8_t byte_at(const std::vector<std::byte>& b, size_t i) { return static_cast<uint8_t>(b[i]); }

TEST(GgmlQuantizeBlocks, EveryExportTypeIsQuantizable) {
  for (GgmlType t : kKQuants) EXPECT_TRUE(ggml_quantizable(t)) << ggml_type_info(t).name;
  for (GgmlType t : kLegacy) EXPECT_TRUE(ggml_quantizable(t)) << ggml_type_info(t).name;
  EXPECT_FALSE(ggml_quantizable(GgmlType::kIQ4_XS));
}

// Values 0..15 in every 32-value group: min 0, the first scale 15/15 fits them exactly (error 0,
// which no other trial beats), so every group gets scale 1 → 6-bit scale 63 against d = f16(1/63),
// min 0, and the quants are the values themselves.
TEST(GgmlQuantizeBlocks, Q4_KOfExactLevelsHasKnownBytes) {
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[i] = static_cast<float>(i % 16);
  const auto q = quantize(GgmlType::kQ4_K, x);
  uint16_t d, dmin;
  std::memcpy(&d, q.data(), 2);
  std::memcpy(&dmin, q.data() + 2, 2);
  EXPECT_EQ(d, f32_to_f16(1.0f / 63.0f));
  EXPECT_EQ(dmin, 0u);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(byte_at(q, 4 + j), 0xFF) << j;  // scales 0..3 (63) + high bits of 4..7
  for (int j = 4; j < 8; ++j) EXPECT_EQ(byte_at(q, 4 + j), 0x00) << j;  // mins 0..3, no high bits
  for (int j = 8; j < 12; ++j) EXPECT_EQ(byte_at(q, 4 + j), 0x0F) << j;  // low nibbles: scale 15, min 0
  for (int l = 0; l < 32; ++l) EXPECT_EQ(byte_at(q, 16 + l), (l % 16) | ((l % 16) << 4)) << l;
}

// A constant row c: every group's search ends at scale -c/32 (all quants at -32), the super-scale is
// d = c/4096 and every 8-bit scale -128, so d·(-128)·(-32) gives c back exactly when c/4096 is an f16.
TEST(GgmlQuantizeBlocks, Q6_KOfAConstantRowIsExact) {
  const std::vector<float> x(512, 1.0f);
  const auto q = quantize(GgmlType::kQ6_K, x);
  uint16_t d;
  std::memcpy(&d, q.data() + 208, 2);
  EXPECT_EQ(f16_to_f32(d), 1.0f / 4096);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(static_cast<int8_t>(q[192 + j]), -128) << j;
  for (float y : round_trip(GgmlType::kQ6_K, x)) ASSERT_EQ(y, 1.0f);
}

TEST(GgmlQuantizeBlocks, LegacyConstantRowsAreExact) {
  // _0 types: d = c / -8 (or -16) is an f16 for c = 1, every value at the most negative level.
  // _1 types: max = min, so d = 0 and the stored minimum is the value.
  const std::vector<float> x(64, 1.0f);
  for (GgmlType t : kLegacy)
    for (float y : round_trip(t, x)) ASSERT_EQ(y, 1.0f) << ggml_type_info(t).name;
}

TEST(GgmlQuantizeBlocks, AllZeroSuperBlocksAreAllZeroBytes) {
  const std::vector<float> x(256, 0.0f);
  for (GgmlType t : kKQuants) {
    const auto q = quantize(t, x);
    for (size_t i = 0; i < q.size(); ++i) ASSERT_EQ(byte_at(q, i), 0) << ggml_type_info(t).name << " byte " << i;
  }
  for (GgmlType t : kLegacy)
    for (float y : round_trip(t, std::vector<float>(32, 0.0f))) ASSERT_EQ(y, 0.0f) << ggml_type_info(t).name;
}

// Gaussian rows with outliers: every value comes back within one quantisation step of the block
// its scale is relative to (the block's range over the number of levels: 32 values for the legacy
// types, the 256-value super-block for the k-quants, whose sub-block scales and minimums are quantised
// against the super-block's largest), which a misplaced nibble, bit or scale would break.
TEST(GgmlQuantizeBlocks, RoundTripErrorIsWithinOneStepOfTheBlock) {
  struct Case {
    GgmlType type;
    int levels;
  };
  const Case cases[] = {{GgmlType::kQ2_K, 4},  {GgmlType::kQ3_K, 8},  {GgmlType::kQ4_K, 16},
                        {GgmlType::kQ5_K, 32}, {GgmlType::kQ6_K, 64}, {GgmlType::kQ4_0, 16},
                        {GgmlType::kQ4_1, 16}, {GgmlType::kQ5_0, 32}, {GgmlType::kQ5_1, 32}};
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> x(8 * 256);
  for (size_t i = 0; i < x.size(); ++i) x[i] = normal(rng) * (i % 97 == 0 ? 8.0f : 1.0f);
  for (const Case& c : cases) {
    const auto y = round_trip(c.type, x);
    const size_t block = ggml_type_info(c.type).block_size;
    for (size_t b = 0; b < x.size(); b += block) {
      float lo = x[b], hi = x[b];
      for (size_t i = 1; i < block; ++i) lo = std::min(lo, x[b + i]), hi = std::max(hi, x[b + i]);
      const float step = (hi - lo) / (c.levels - 1);
      for (size_t i = 0; i < block; ++i)
        ASSERT_LE(std::fabs(y[b + i] - x[b + i]), step) << ggml_type_info(c.type).name << " value " << b + i;
    }
  }
}

TEST(GgmlQuantizeBlocks, RowsOfPartialBlocksFallBackAsLlamaCpp) {
  EXPECT_EQ(ggml_row_fallback(GgmlType::kQ4_K, 512), GgmlType::kQ4_K);
  EXPECT_EQ(ggml_row_fallback(GgmlType::kQ4_K, 576), GgmlType::kQ5_0);
  EXPECT_EQ(ggml_row_fallback(GgmlType::kQ5_K, 576), GgmlType::kQ5_1);
  EXPECT_EQ(ggml_row_fallback(GgmlType::kQ6_K, 576), GgmlType::kQ8_0);
  EXPECT_EQ(ggml_row_fallback(GgmlType::kQ2_K, 576), GgmlType::kQ4_0);
  EXPECT_EQ(ggml_row_fallback(GgmlType::kQ3_K, 576), GgmlType::kQ4_0);
  EXPECT_EQ(ggml_row_fallback(GgmlType::kQ6_K, 100), GgmlType::kF16);
  EXPECT_EQ(ggml_row_fallback(GgmlType::kQ8_0, 100), GgmlType::kF16);
  EXPECT_EQ(ggml_row_fallback(GgmlType::kBF16, 100), GgmlType::kBF16);
}

}  // namespace
}  // namespace upcycle
