// GGUF writing read back by upcycle's own reader (every value type, tensor offsets and padding, the
// streamed bytes), atomicity on failure, and the Q8_0 / F16 / BF16 quantisers on values whose
// result follows from ggml's reference formulas. gguf-py judges the files in tests/interop.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>
#include <limits>

#include "core/dtype.h"
#include "core/error.h"
#include "io/ggml_dequantize.h"
#include "io/ggml_quantize.h"
#include "io/gguf_file.h"
#include "io/gguf_writer.h"
#include "support/test_support.h"

namespace upcycle {
namespace {

using test::ScratchDir;

std::span<const std::byte> bytes_of(const std::vector<float>& v) {
  return {reinterpret_cast<const std::byte*>(v.data()), v.size() * sizeof(float)};
}

TEST(GgufWriter, WritesWhatTheReaderReads) {
  ScratchDir dir;
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 3);
  w.add_f32("llama.rope.freq_base", 500000.0f);
  w.add_bool("tokenizer.ggml.add_bos_token", true);
  w.add_strings("tokenizer.ggml.tokens", {"a", "Ġb", ""});
  w.add_i32s("tokenizer.ggml.token_type", {1, 3, -1});
  w.add_tensor("a", {3, 2}, GgmlType::kF32);
  w.add_tensor("q", {64}, GgmlType::kQ8_0);
  EXPECT_EQ(w.tensor_bytes("a"), 24u);
  EXPECT_EQ(w.tensor_bytes("q"), 68u);
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<float> q(64);
  for (int i = 0; i < 64; ++i) q[i] = float(i) - 20.0f;
  std::vector<std::byte> q_bytes(68);
  quantize_values(GgmlType::kQ8_0, q.data(), q_bytes.data(), 64);
  w.write(dir / "m.gguf", [&](const GgufWriter::TensorSink& sink) {
    sink("q", std::span(q_bytes).subspan(34), 34);  // pieces, in any order
    sink("a", bytes_of(a), 0);
    sink("q", std::span(q_bytes).first(34), 0);
  });

  const GgufFile f = GgufFile::open(dir / "m.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("llama.block_count"), 3u);
  EXPECT_EQ(f.get_float("llama.rope.freq_base"), 500000.0);
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(f.string_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "Ġb", ""}));
  EXPECT_EQ(f.int_array("tokenizer.ggml.token_type"), (std::vector<int64_t>{1, 3, -1}));
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.find_tensor("a")->hf_shape(), (Shape{2, 3}));
  EXPECT_EQ(f.find_tensor("q")->offset, 32u);  // 24 bytes padded to the alignment
  std::vector<float> back(64);
  std::vector<std::byte> raw(68);
  f.read_tensor_bytes(*f.find_tensor("q"), 0, 68, raw.data());
  dequantize_blocks(GgmlType::kQ8_0, raw.data(), back.data(), 2);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(back[i], q[i], 0.25f) << i;
}

TEST(GgufWriter, FailedWritesLeaveNothing) {
  ScratchDir dir;
  GgufWriter w;
  w.add_tensor("a", {4}, GgmlType::kF32);
  EXPECT_THROW(w.write(dir / "m.gguf", [](const GgufWriter::TensorSink&) { throw Error("source unreadable"); }), Error);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(GgmlQuantize, Q8_0FollowsTheReferenceFormula) {
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;
  x[1] = -63.5f;  // exactly half way: rounds away from zero
  x[2] = 0.49f;
  std::vector<std::byte> out(34);
  quantize_values(GgmlType::kQ8_0, x.data(), out.data(), 32);
  uint16_t d;
  std::memcpy(&d, out.data(), 2);
  EXPECT_EQ(f16_to_f32(d), 1.0f);  // max |x| / 127
  EXPECT_EQ(static_cast<int8_t>(out[2]), 127);
  EXPECT_EQ(static_cast<int8_t>(out[3]), -64);
  EXPECT_EQ(static_cast<int8_t>(out[4]), 0);
  std::vector<float> zeros(32, 0.0f);
  quantize_values(GgmlType::kQ8_0, zeros.data(), out.data(), 32);  // d = 0: every quant 0, no division by zero
  for (int j = 0; j < 34; ++j) EXPECT_EQ(out[j], std::byte{0});
}

// The quantiser against ggml's formula written out with std::roundf, block by block: values landing
// exactly on and next to halves at many scales, a block with a NaN, one with an infinity, and tiny
// blocks (one with a subnormal d).
TEST(GgmlQuantize, Q8_0MatchesRoundfEverywhere) {
  std::vector<float> x;
  for (int scale = -30; scale <= 30; scale += 3)
    for (int b = 0; b < 4; ++b)
      for (int j = 0; j < 32; ++j) {
        const float q = static_cast<float>((j * 37 + b * 11) % 255 - 127) + (j % 3 == 0 ? 0.5f : 0.25f * b);
        x.push_back(std::ldexp(j % 4 == 1 ? std::nextafter(q, 0.0f) : q, scale));
      }
  for (int j = 0; j < 32; ++j) x.push_back(j == 5 ? std::nanf("") : float(j) - 16.0f);
  for (int j = 0; j < 32; ++j) x.push_back(j == 7 ? -std::numeric_limits<float>::infinity() : float(j));
  for (int j = 0; j < 32; ++j) x.push_back(std::ldexp(float(j - 16), -124));  // d subnormal, 1/d finite
  for (int j = 0; j < 32; ++j) x.push_back(std::ldexp(float(j - 16), -120));
  std::vector<std::byte> out(x.size() / 32 * 34);
  quantize_values(GgmlType::kQ8_0, x.data(), out.data(), x.size());
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = amax > std::fabs(x[32 * b + j]) ? amax : std::fabs(x[32 * b + j]);
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint16_t stored;
    std::memcpy(&stored, out.data() + 34 * b, 2);
    ASSERT_EQ(stored, f32_to_f16(d)) << "block " << b;
    for (int j = 0; j < 32; ++j) {
      const float scaled = x[32 * b + j] * id;
      const float want = std::isnan(scaled) ? 0.0f : std::roundf(scaled);
      if (std::isinf(want)) continue;  // int8 of an infinity: undefined in ggml too
      ASSERT_EQ(static_cast<int8_t>(out[34 * b + 2 + j]), static_cast<int8_t>(want)) << "block " << b << " value " << j;
    }
  }
}

TEST(GgmlQuantize, HalfTypesRoundToNearestEven) {
  const float v[2] = {1.0f + 1.0f / 2048, -3.0f};  // halfway between two f16 values: stays at the even one
  std::byte out[4];
  quantize_values(GgmlType::kF16, v, out, 2);
  uint16_t h[2];
  std::memcpy(h, out, 4);
  EXPECT_EQ(f16_to_f32(h[0]), 1.0f);
  EXPECT_EQ(f16_to_f32(h[1]), -3.0f);
  quantize_values(GgmlType::kBF16, v, out, 2);
  std::memcpy(h, out, 4);
  EXPECT_EQ(bf16_to_f32(h[0]), 1.0f);
  EXPECT_EQ(bf16_to_f32(h[1]), -3.0f);
}

}  // namespace
}  // namespace upcycle
