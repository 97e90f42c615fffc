// safetensors reading: hand-built files read back byte for byte, and every header validation
// failure reported as an Error naming the tensor or problem and the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "io/safetensors.h"
#include "support/expect_error.h"
#include "support/test_support.h"

namespace upcycle {
namespace {

using test::as_bytes;
using test::as_string;
using test::bytes_of;
using test::ScratchDir;

// a = F32 [1.0, -2.0], b = BF16 [1.0, 0.5], listed out of offset order with metadata in between.
const std::string kHeader =
    R"({"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},"__metadata__":{"format":"pt","note":"hi"},)"
    R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
const std::string kData = bytes_of({0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x80, 0x3f, 0x00, 0x3f});

class SafetensorsReader : public ::testing::Test {
 protected:
  // Writes `header` + `data` as model.safetensors and returns its path.
  std::filesystem::path raw(const std::string& header, const std::string& data = "") {
    test::write_safetensors_raw(path_, header, data);
    return path_;
  }
  // Expects opening a file with this header and data to fail with `needle` in the message.
  void expect_invalid(const std::string& header, const std::string& data, const std::string& needle) {
    SCOPED_TRACE(header);
    EXPECT_UPCYCLE_ERROR(SafetensorsFile::open(raw(header, data)), needle, path_.string());
  }
  ScratchDir dir_;
  std::filesystem::path path_ = dir_ / "model.safetensors";
};

TEST_F(SafetensorsReader, ReadsHandBuiltFile) {
  auto file = SafetensorsFile::open(raw(kHeader, kData));
  EXPECT_EQ(file.data_offset(), 8 + kHeader.size());
  EXPECT_EQ(file.file_size(), 8 + kHeader.size() + 12);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "hi"}}));
  ASSERT_EQ(file.tensors().size(), 2u);
  const TensorInfo& a = file.tensors()[0];  // sorted by offset
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.dtype, DType::kF32);
  EXPECT_EQ(a.shape, Shape{2});
  EXPECT_EQ(a.begin, 0u);
  EXPECT_EQ(a.end, 8u);
  const TensorInfo& b = file.tensors()[1];
  EXPECT_EQ(b.name, "b");
  EXPECT_EQ(b.dtype, DType::kBF16);
  EXPECT_EQ(b.begin, 8u);
  EXPECT_EQ(b.end, 12u);
  EXPECT_EQ(file.find("a"), &a);
  EXPECT_EQ(file.find("c"), nullptr);

  EXPECT_EQ(as_string(file.data(a)), kData.substr(0, 8));
  EXPECT_EQ(as_string(file.data(b)), kData.substr(8, 4));
  float values[2];
  std::memcpy(values, file.data(a).data(), 8);
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[1], -2.0f);
  EXPECT_EQ(file.data(a).data(), file.data(a).data());  // mapped once
}

TEST_F(SafetensorsReader, MovedFileKeepsDataAndDescriptor) {
  auto first = SafetensorsFile::open(raw(kHeader, kData));
  auto first_bytes = as_string(first.data(*first.find("b")));
  SafetensorsFile moved(std::move(first));
  EXPECT_EQ(as_string(moved.data(*moved.find("b"))), first_bytes);
  test::write_safetensors_raw(dir_ / "other.safetensors", R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                              "z");
  auto other = SafetensorsFile::open(dir_ / "other.safetensors");
  EXPECT_EQ(as_string(other.data(*other.find("x"))), "z");
  other = std::move(moved);
  EXPECT_EQ(as_string(other.data(*other.find("a"))), kData.substr(0, 8));
  char byte = 0;
  EXPECT_EQ(::pread(other.fd(), &byte, 1, static_cast<off_t>(other.data_offset() + 9)), 1);
  EXPECT_EQ(byte, kData[9]);
}

TEST_F(SafetensorsReader, ConcurrentFirstAccessMapsOnce) {
  auto file = SafetensorsFile::open(raw(kHeader, kData));
  std::vector<const std::byte*> seen(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < seen.size(); ++i)
    threads.emplace_back([&, i] { seen[i] = file.data(file.tensors()[1]).data(); });
  for (auto& t : threads) t.join();
  for (auto* p : seen) EXPECT_EQ(p, seen[0]);
}

TEST_F(SafetensorsReader, AcceptsWhitespaceAndPadding) {
  const std::string header = " \n\t{ \"a\" : {\"dtype\":\"U8\", \"shape\":[ 3 ],\"data_offsets\":[0,3]} }\r\n       ";
  auto file = SafetensorsFile::open(raw(header, "xyz"));
  ASSERT_EQ(file.tensors().size(), 1u);
  EXPECT_EQ(as_string(file.data(file.tensors()[0])), "xyz");
  EXPECT_TRUE(file.metadata().empty());
}

TEST_F(SafetensorsReader, ScalarAndZeroSizeTensors) {
  const std::string header =
      R"({"z2":{"dtype":"F16","shape":[4,0],"data_offsets":[4,4]},"s":{"dtype":"I32","shape":[],"data_offsets":[0,4]},)"
      R"("z1":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})";
  auto file = SafetensorsFile::open(raw(header, bytes_of({7, 0, 0, 0})));
  ASSERT_EQ(file.tensors().size(), 3u);
  EXPECT_EQ(file.tensors()[0].name, "z1");
  EXPECT_EQ(file.tensors()[1].name, "s");
  EXPECT_EQ(file.tensors()[2].name, "z2");
  const TensorInfo& s = *file.find("s");
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.numel(), 1u);
  EXPECT_EQ(as_string(file.data(s)), bytes_of({7, 0, 0, 0}));
  EXPECT_EQ(file.find("z2")->numel(), 0u);
  EXPECT_TRUE(file.data(*file.find("z2")).empty());
}

TEST_F(SafetensorsReader, EmptyHeaderAndNoData) {
  auto file = SafetensorsFile::open(raw("{}"));
  EXPECT_TRUE(file.tensors().empty());
  EXPECT_TRUE(SafetensorsFile::open(raw(R"({"__metadata__":null})")).metadata().empty());
}

// Offsets are u64: a sparse 5 GB file keeps the test cheap.
TEST_F(SafetensorsReader, OffsetsBeyondFourGigabytes) {
  constexpr uint64_t kBig = 5'000'000'000ull;
  const std::string header = R"({"small":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                             R"("big":{"dtype":"U8","shape":[5000000000],"data_offsets":[8,5000000008]}})";
  raw(header, "12345678");
  std::filesystem::resize_file(path_, 8 + header.size() + 8 + kBig);
  auto file = SafetensorsFile::open(path_);
  const TensorInfo& big = *file.find("big");
  EXPECT_EQ(big.end, kBig + 8);
  auto bytes = file.data(big);
  EXPECT_EQ(bytes.size(), kBig);
  EXPECT_EQ(bytes[kBig - 1], std::byte{0});
}

TEST_F(SafetensorsReader, FileLevelErrors) {
  EXPECT_UPCYCLE_ERROR(SafetensorsFile::open(path_), "No such file", path_.string());
  EXPECT_UPCYCLE_ERROR(SafetensorsFile::open(dir_.path()), "directory", dir_.path().string());
  test::write_bytes(path_, "abc");
  EXPECT_UPCYCLE_ERROR(SafetensorsFile::open(path_), "file is too short to be safetensors (3 bytes)", path_.string());
  // Claims 100 header bytes, holds 10.
  test::write_bytes(path_, bytes_of({100, 0, 0, 0, 0, 0, 0, 0}) + "{}        ");
  EXPECT_UPCYCLE_ERROR(SafetensorsFile::open(path_), "header length 100 runs past the end of the file (18 bytes)",
                       path_.string());
  test::write_bytes(path_, bytes_of({0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0}) + "{}");  // 100,000,001
  EXPECT_UPCYCLE_ERROR(SafetensorsFile::open(path_), "header length 100000001 exceeds the safetensors limit",
                       path_.string());
  test::write_bytes(path_, bytes_of({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) + "{}");
  EXPECT_UPCYCLE_ERROR(SafetensorsFile::open(path_), "exceeds the safetensors limit", path_.string());
}

TEST_F(SafetensorsReader, MalformedJson) {
  expect_invalid("{not json}", "", "header is not valid JSON");
  expect_invalid("", "", "header is not valid JSON");
  expect_invalid("{} {}", "", "header is not valid JSON");
  expect_invalid("{\"a\":\"\xff\"}", "", "header is not valid JSON");  // not UTF-8
  expect_invalid(R"({"__metadata__":{"n":1e999}})", "", "header is not valid JSON: number overflow");
  expect_invalid("[1, 2]", "", "header is not a JSON object");
  expect_invalid(
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
      "ab", "header has duplicate key 'a'");
  expect_invalid(R"({"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "a",
                 "header has duplicate key 'dtype'");
  expect_invalid(R"({"__metadata__":{"k":"v","k":"w"}})", "", "header has duplicate key 'k'");
}

TEST_F(SafetensorsReader, BadTensorEntries) {
  expect_invalid(R"({"a":[0,1]})", "a", "tensor 'a' has a header entry that is not a JSON object");
  expect_invalid(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}})", "a",
                 "tensor 'a' has unknown field 'extra'");
  expect_invalid(R"({"a":{"dtype":"U8","shape":[1]}})", "a", "tensor 'a' has no data_offsets");
  expect_invalid(R"({"a":{"dtype":"F17","shape":[1],"data_offsets":[0,1]}})", "a", "tensor 'a' has unknown dtype F17");
  expect_invalid(R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,1]}})", "a",
                 "tensor 'a' has a dtype that is not a string");
  expect_invalid(
      R"({"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", "a",
      "tensor 'a' has unsupported dtype F8_E4M3 (FP8/low-bit checkpoints are not supported; convert to bf16 first)");
  for (const char* shape : {"\"2\"", "[2.5]", "[[2]]", "[-1]", "[\"2\"]", "[9223372036854775808]", "[1e3]", "null"})
    expect_invalid(std::string(R"({"a":{"dtype":"U8","data_offsets":[0,2],"shape":)") + shape + "}}", "ab",
                   "tensor 'a' has an invalid shape");
  for (const char* offsets : {"[0]", "[0,1,2]", "[-1,1]", "[2,1]", "[0.0,1]", "{}"})
    expect_invalid(std::string(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":)") + offsets + "}}", "ab",
                   "tensor 'a' has invalid data_offsets");
  expect_invalid(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", "",
                 "tensor 'a' has shape [4294967296, 4294967296] whose byte size overflows");
  expect_invalid(R"({"__metadata__":{"format":"pt","n":1}})", "", "header __metadata__ value for 'n' is not a string");
  expect_invalid(R"({"__metadata__":["pt"]})", "", "header __metadata__ is not a JSON object");
}

TEST_F(SafetensorsReader, SizeAndTilingErrors) {
  expect_invalid(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,12]}})", std::string(12, 'x'),
                 "tensor 'a' has 12 bytes but shape [2, 3] of F32 needs 24");
  expect_invalid(
      R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})",
      std::string(12, 'x'), "tensors 'a' and 'b' overlap ('b' starts at byte 4, 'a' ends at byte 8)");
  expect_invalid(
      R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[5,9]}})",
      std::string(9, 'x'), "1 bytes of the data section before tensor 'b' (from byte 4) belong to no tensor");
  expect_invalid(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", std::string(6, 'x'),
                 "2 bytes of the data section before tensor 'a' (from byte 0) belong to no tensor");
  expect_invalid(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", "1234",
                 "tensor 'a' has data_offsets [0, 8] past the end of the file (the data section has 4 bytes)");
  expect_invalid(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551614,18446744073709551615]}})", "x",
                 "past the end of the file");
  expect_invalid(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", std::string(8, 'x'),
                 "4 bytes at the end of the data section belong to no tensor (the last tensor 'a' ends at byte 4)");
  expect_invalid("{}", "x", "1 bytes at the end of the data section belong to no tensor (the header lists no tensors)");
}

TEST(SafetensorsHeader, ParsesWithoutAFileAndLabelsErrors) {
  auto header = parse_safetensors_header(R"({"a":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})", 3, "label");
  ASSERT_EQ(header.tensors.size(), 1u);
  EXPECT_EQ(header.tensors[0].dtype, DType::kBool);
  EXPECT_UPCYCLE_ERROR(parse_safetensors_header("[]", 0, "label"), "not a JSON object", "label");
}

}  // namespace
}  // namespace upcycle
