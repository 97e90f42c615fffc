// GGUF reading: a hand-built file read back field by field, and every validation failure (truncation
// at any byte, bad magic and versions, lying counts, bad alignment, types, shapes and offsets)
// reported as an upcycle::Error naming the key or tensor and the file — never a crash or a huge
// allocation.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "io/gguf_file.h"
#include "support/expect_error.h"
#include "support/gguf_builder.h"
#include "support/test_support.h"

namespace upcycle {
namespace {

using test::GgufBuilder;
using test::ScratchDir;

constexpr uint32_t kF32 = 0, kQ8_0 = 8;

std::string f32_bytes(std::initializer_list<float> values) {
  std::string out;
  for (float v : values) out.append(reinterpret_cast<const char*>(&v), 4);
  return out;
}

// Two KVs, then tensors 'a' F32 ne=[3, 2] at data offset 0 and 'q' Q8_0 ne=[32] at offset 32.
std::string valid_file() {
  std::string data = f32_bytes({1, 2, 3, 4, 5, 6});
  data.resize(32, '\0');
  data += std::string("\x00\x3c", 2);  // Q8_0 block: d = 1.0 (f16 0x3c00)
  for (int i = 0; i < 32; ++i) data += static_cast<char>(i - 16);
  return GgufBuilder()
      .header(2, 4)
      .kv_string("general.architecture", "llama")
      .kv_u32("llama.block_count", 7)
      .kv_strings("tokenizer.ggml.tokens", {"a", "bc", ""})
      .kv_i32s("tokenizer.ggml.token_type", {1, -3, 4})
      .tensor("a", {3, 2}, kF32, 0)
      .tensor("q", {32}, kQ8_0, 32)
      .finish(data);
}

class GgufReader : public ::testing::Test {
 protected:
  std::filesystem::path write(const std::string& bytes) {
    test::write_bytes(path_, bytes);
    return path_;
  }
  void expect_invalid(const std::string& bytes, const std::string& needle) {
    EXPECT_UPCYCLE_ERROR(GgufFile::open(write(bytes)), needle, path_.string());
  }
  ScratchDir dir_;
  std::filesystem::path path_ = dir_ / "model.gguf";
};

TEST_F(GgufReader, ReadsMetadataAndTensors) {
  const GgufFile f = GgufFile::open(write(valid_file()));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  EXPECT_EQ(f.keys(), (std::vector<std::string>{"general.architecture", "llama.block_count", "tokenizer.ggml.tokens",
                                                 "tokenizer.ggml.token_type"}));
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("llama.block_count"), 7u);
  EXPECT_FALSE(f.get_uint("llama.absent").has_value());
  EXPECT_EQ(f.string_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "bc", ""}));
  EXPECT_EQ(f.int_array("tokenizer.ggml.token_type"), (std::vector<int64_t>{1, -3, 4}));
  EXPECT_EQ(f.describe("tokenizer.ggml.tokens"), "[3 × STRING]");

  ASSERT_EQ(f.tensors().size(), 2u);
  const GgufTensorInfo* a = f.find_tensor("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->hf_shape(), (Shape{2, 3}));
  EXPECT_EQ(a->rows(), 2u);
  EXPECT_EQ(a->nbytes, 24u);
  std::vector<float> values(6);
  f.read_tensor_bytes(*a, 0, 24, reinterpret_cast<std::byte*>(values.data()));
  EXPECT_EQ(values, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  const GgufTensorInfo* q = f.find_tensor("q");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, GgmlType::kQ8_0);
  EXPECT_EQ(q->nbytes, 34u);
  EXPECT_EQ(q->row_bytes(), 34u);
}

TEST_F(GgufReader, WrongValueTypesNameTheKey) {
  const GgufFile f = GgufFile::open(write(valid_file()));
  EXPECT_UPCYCLE_ERROR(f.get_uint("general.architecture"), "key 'general.architecture' must be an integer", path_.string());
  EXPECT_UPCYCLE_ERROR(f.get_string("llama.block_count"), "key 'llama.block_count' must be a STRING", path_.string());
  EXPECT_UPCYCLE_ERROR(f.string_array("tokenizer.ggml.token_type"), "must be an array of strings", path_.string());
  EXPECT_UPCYCLE_ERROR(f.get_uint("tokenizer.ggml.tokens"), "must be an integer", path_.string());
}

TEST_F(GgufReader, EveryTruncationIsAnError) {
  const std::string full = valid_file();
  for (size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE(n);
    try {
      GgufFile::open(write(full.substr(0, n)));
      ADD_FAILURE() << "a file cut to " << n << " bytes opened";
    } catch (const Error& e) {
      EXPECT_EQ(e.file(), path_.string());
      const std::string what = e.what();
      EXPECT_TRUE(what.find("truncated") != std::string::npos || what.find("too short") != std::string::npos) << what;
    }
  }
}

TEST_F(GgufReader, TruncationNamesTheKeyOrTensor) {
  const std::string full = valid_file();
  const size_t in_tokens = full.find("bc");
  expect_invalid(full.substr(0, in_tokens + 1), "key 'tokenizer.ggml.tokens'");
  expect_invalid(full.substr(0, full.size() - 1), "tensor 'q' needs data bytes [32, 66)");
}

TEST_F(GgufReader, RefusesBadMagicAndVersions) {
  expect_invalid(GgufBuilder().header(0, 0, 3, 0x4c4c5546).finish(""), "not a GGUF file: bad magic");
  expect_invalid(GgufBuilder().header(0, 0, 1).finish(""), "GGUF version 1 is not supported");
  expect_invalid(GgufBuilder().header(0, 0, 4).finish(""), "GGUF version 4 is not supported");
  expect_invalid(GgufBuilder().header(0, 0, 0x03000000).finish(""), "big-endian GGUF files are not supported");
  expect_invalid("GGUF", "file is too short to be GGUF (4 bytes)");
}

TEST_F(GgufReader, LyingCountsFailWithoutHugeAllocations) {
  expect_invalid(GgufBuilder().header(0, uint64_t(1) << 60).finish(""), "claims 1152921504606846976 metadata key/value pairs");
  expect_invalid(GgufBuilder().header(uint64_t(1) << 62, 0).finish(""), "tensor infos, more than the file's");
  // An array of 2^40 strings in a small file.
  std::string b = GgufBuilder().header(0, 1).str("k").put(uint32_t(9)).put(uint32_t(8)).put(uint64_t(1) << 40).finish("");
  expect_invalid(b, "strings in key 'k'");
  // An array of 2^62 u64: the byte count overflows.
  b = GgufBuilder().header(0, 1).str("k").put(uint32_t(9)).put(uint32_t(10)).put(uint64_t(1) << 62).finish("");
  expect_invalid(b, "key 'k' has an impossible array length");
  // A string longer than the file.
  b = GgufBuilder().header(0, 1).str("k").put(uint32_t(8)).put(uint64_t(1) << 50).finish("");
  expect_invalid(b, "reading key 'k'");
}

TEST_F(GgufReader, RefusesMalformedMetadata) {
  expect_invalid(GgufBuilder().header(0, 2).kv_u32("k", 1).kv_u32("k", 2).finish(""), "duplicate metadata key 'k'");
  expect_invalid(GgufBuilder().header(0, 1).str("k").put(uint32_t(13)).finish(""), "key 'k' has unknown type 13");
  expect_invalid(GgufBuilder().header(0, 1).str("k").put(uint32_t(9)).put(uint32_t(9)).put(uint64_t(0)).finish(""),
                 "key 'k' is an array of arrays");
  expect_invalid(GgufBuilder().header(0, 1).kv_bool("b", 2).finish(""), "key 'b' is a BOOL holding 2");
  expect_invalid(GgufBuilder().header(0, 1).kv_u32("general.alignment", 24).finish(""),
                 "key 'general.alignment' is 24, not a power of two");
  expect_invalid(GgufBuilder().header(0, 1).kv_f32("general.alignment", 32).finish(""),
                 "key 'general.alignment' must be a UINT32");
}

TEST_F(GgufReader, RefusesMalformedTensorInfos) {
  const std::string data(64, '\0');
  auto one = [&](std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    return GgufBuilder().header(1, 0).tensor("w", std::move(ne), type, offset).finish(data);
  };
  expect_invalid(one({1, 1, 1, 1, 1}, kF32, 0), "tensor 'w' has 5 dimensions");
  expect_invalid(one({4}, 4, 0), "tensor 'w' has unknown ggml type 4");
  expect_invalid(one({30}, kQ8_0, 0), "tensor 'w' has rows of 30 elements, not a multiple of Q8_0's block of 32");
  expect_invalid(one({4}, kF32, 16), "tensor 'w' starts at data offset 16, not a multiple of the alignment 32");
  expect_invalid(one({32}, kF32, 0), "tensor 'w' needs data bytes [0, 128)");
  expect_invalid(one({uint64_t(1) << 40, uint64_t(1) << 40}, kF32, 0), "tensor 'w' has an impossible shape");
  expect_invalid(GgufBuilder().header(2, 0).tensor("w", {4}, kF32, 0).tensor("w", {4}, kF32, 32).finish(data),
                 "duplicate tensor name 'w'");
  expect_invalid(GgufBuilder().header(2, 0).tensor("w", {16}, kF32, 0).tensor("v", {4}, kF32, 32).finish(data),
                 "tensor 'v' overlaps tensor 'w'");
}

TEST_F(GgufReader, HonoursGeneralAlignment) {
  std::string data(8, '\0');
  const std::string bytes =
      GgufBuilder().header(2, 1).kv_u32("general.alignment", 8).tensor("a", {1}, kF32, 0).tensor("b", {1}, kF32, 8)
          .finish(std::string(16, '\x01'), 8);
  const GgufFile f = GgufFile::open(write(bytes));
  EXPECT_EQ(f.alignment(), 8u);
  EXPECT_EQ(f.data_offset() + 16, f.file_size());
  EXPECT_EQ(f.find_tensor("b")->offset, 8u);
}

}  // namespace
}  // namespace upcycle
