// TensorBoard event files checked by independent means: CRC-32C against the RFC 3720 test vectors,
// TFRecord framing re-read by this file's own reader with a bit-at-a-time CRC (not the table the writer
// uses), and every Event payload decoded by Debian's protoc (`protoc --decode_raw`, package
// protobuf-compiler from scripts/setup), whose text is compared with what the proto field numbers and
// IEEE bit patterns say it must be.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "support/expect_error.h"
#include "support/test_support.h"
#include "train/tensorboard_writer.h"

namespace upcycle::train {
namespace {
namespace fs = std::filesystem;
using test::ScratchDir;

// CRC-32C one bit at a time, straight from the definition (reflected Castagnoli polynomial).
uint32_t crc32c_bitwise(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : bytes) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint32_t mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

template <typename T>
T load_le(const std::string& bytes, size_t at) {
  T value{};
  std::memcpy(&value, bytes.data() + at, sizeof(T));
  return value;
}

// Splits an event file into record payloads, checking both masked CRCs of every record.
std::vector<std::string> read_records(const fs::path& file) {
  const std::string bytes = test::read_bytes(file);
  std::vector<std::string> payloads;
  size_t at = 0;
  while (at < bytes.size()) {
    EXPECT_GE(bytes.size() - at, 12u) << "truncated record header at byte " << at;
    if (bytes.size() - at < 12) break;
    const uint64_t length = load_le<uint64_t>(bytes, at);
    EXPECT_EQ(load_le<uint32_t>(bytes, at + 8), mask(crc32c_bitwise(bytes.substr(at, 8)))) << "length CRC, byte " << at;
    EXPECT_GE(bytes.size() - at - 12, length + 4) << "truncated record at byte " << at;
    if (bytes.size() - at - 12 < length + 4) break;
    std::string data = bytes.substr(at + 12, length);
    EXPECT_EQ(load_le<uint32_t>(bytes, at + 12 + length), mask(crc32c_bitwise(data))) << "data CRC, byte " << at;
    payloads.push_back(std::move(data));
    at += 12 + length + 4;
  }
  return payloads;
}

// protoc's schema-less rendering of one protobuf message.
std::string decode_raw(const std::string& payload, const ScratchDir& scratch) {
  const fs::path in = scratch / "payload.bin";
  test::write_bytes(in, payload);
  const std::string command = "protoc --decode_raw < '" + in.string() + "' 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  if (pipe == nullptr) return {};
  std::string text;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) text.append(buffer, n);
  const int status = ::pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "protoc --decode_raw failed (install protobuf-compiler: scripts/setup): " << text;
  return text;
}

std::string hex(uint64_t value, int digits) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "0x%0*llx", digits, static_cast<unsigned long long>(value));
  return buffer;
}

// Event{wall_time = 1 (fixed64 double), step = 2, summary = 5 {value = 1 {tag = 1, simple_value = 2 (fixed32)}}}.
std::string expected_scalar(double wall_time, int64_t step, const std::string& tag, double value) {
  return "1: " + hex(std::bit_cast<uint64_t>(wall_time), 16) + "\n2: " + std::to_string(step) +
         "\n5 {\n  1 {\n    1: \"" + tag + "\"\n    2: " + hex(std::bit_cast<uint32_t>(static_cast<float>(value)), 8) +
         "\n  }\n}\n";
}

// The wall time of a decoded event's field 1 (its first line, "1: 0x" + 16 hex digits), checked to
// lie in [before, after].
void expect_wall_time_between(const std::string& decoded, double before, double after) {
  ASSERT_TRUE(decoded.starts_with("1: 0x") && decoded.size() > 21 && decoded[21] == '\n') << decoded;
  const std::string digits = decoded.substr(5, 16);
  ASSERT_EQ(digits.find_first_not_of("0123456789abcdef"), std::string::npos) << decoded;
  const double t = std::bit_cast<double>(static_cast<uint64_t>(std::stoull(digits, nullptr, 16)));
  EXPECT_GE(t, before);
  EXPECT_LE(t, after);
}

// events.out.tfevents.<10-digit unix seconds>.<hostname>.<pid>.upcycle
bool is_event_file_name(const std::string& name) {
  const std::string prefix = "events.out.tfevents.", suffix = "." + std::to_string(::getpid()) + ".upcycle";
  if (!name.starts_with(prefix) || !name.ends_with(suffix)) return false;
  const std::string middle = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  return middle.size() > 11 && middle.find_first_not_of("0123456789") == 10 && middle[10] == '.' &&
         middle.find('/') == std::string::npos;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TEST(Crc32c, Rfc3720Vectors) {
  const std::string zeros(32, '\0'), ones(32, '\xFF');
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(crc32c(ascending.data(), ascending.size()), 0x46DD794Eu);
  EXPECT_EQ(crc32c(descending.data(), descending.size()), 0x113FDB5Cu);
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  // Masked: rotate right by 15, add 0xa282ead8 (computed by hand from the values above).
  EXPECT_EQ(masked_crc32c(zeros.data(), zeros.size()), 0x0FD7FFFAu);
  EXPECT_EQ(masked_crc32c("123456789", 9), 0xC78AB0E5u);
  // The table agrees with the bit-at-a-time definition on odd lengths too.
  std::string text = "TensorBoard event files, written without TensorFlow";
  for (size_t n = 0; n <= text.size(); n += 7)
    EXPECT_EQ(crc32c(text.data(), n), crc32c_bitwise(text.substr(0, n))) << n;
}

TEST(TensorBoardWriter, FreshRunRecordsDecode) {
  ScratchDir scratch;
  const fs::path dir = scratch / "run" / "tensorboard";  // created by the writer, parents included
  const double before = now_seconds();
  fs::path file;
  {
    TensorBoardWriter writer(dir, -1);
    file = writer.file();
    writer.scalar("train/loss", 2.5, 1, 1700000000.25);
    writer.scalar("train/lr", 3e-4, 1, 1700000000.25);
    writer.scalar("eval/web/loss", 0.1, 5'000'000'000, 1700000123.5);  // a step past 2^32: 5-byte varint
    // Records are written through as they come: a live TensorBoard already sees all of them.
    EXPECT_EQ(read_records(file).size(), 5u);
    writer.flush();
  }
  const double after = now_seconds();
  EXPECT_EQ(file.parent_path(), dir);
  EXPECT_TRUE(is_event_file_name(file.filename().string())) << file;

  const auto records = read_records(file);
  ASSERT_EQ(records.size(), 5u);
  const std::string version = decode_raw(records[0], scratch);
  expect_wall_time_between(version, before, after);
  EXPECT_NE(version.find("\n2: 0\n3: \"brain.Event:2\"\n"), std::string::npos) << version;
  // A fresh run's SessionLog START, at step 0: TensorBoard's v2 loader takes a run's first START for
  // the first session's and only acts on later ones, so without it the first resume's would be ignored.
  const std::string start = decode_raw(records[1], scratch);
  expect_wall_time_between(start, before, after);
  EXPECT_NE(start.find("\n2: 0\n7 {\n  1: 1\n}\n"), std::string::npos) << start;
  EXPECT_EQ(decode_raw(records[2], scratch), expected_scalar(1700000000.25, 1, "train/loss", 2.5));
  EXPECT_EQ(decode_raw(records[3], scratch), expected_scalar(1700000000.25, 1, "train/lr", 3e-4));
  EXPECT_EQ(decode_raw(records[4], scratch), expected_scalar(1700000123.5, 5'000'000'000, "eval/web/loss", 0.1));
}

TEST(TensorBoardWriter, ResumeAddsSessionLogStart) {
  ScratchDir scratch;
  fs::path first, second;
  {
    TensorBoardWriter writer(scratch.path(), -1);
    first = writer.file();
    writer.scalar("train/loss", 1.0, 12, 1700000000.0);
  }
  const double before = now_seconds();
  {
    TensorBoardWriter writer(scratch.path(), 10);  // same second and pid: the name must still be new
    second = writer.file();
    writer.scalar("train/loss", 0.75, 11, 1700000100.0);
  }
  const double after = now_seconds();
  ASSERT_NE(first, second);
  EXPECT_LT(first.filename().string(), second.filename().string()) << "TensorBoard reads files in name order";
  EXPECT_NE(second.filename().string().find("tfevents"), std::string::npos);
  // The earlier file loses its step-12 point (past the resumed step 10), keeping file_version and
  // START: the trim (tensorboard_files_test.cpp) that TensorBoard's Rust loader, blind to SessionLog, needs.
  EXPECT_EQ(read_records(first).size(), 2u);

  const auto records = read_records(second);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_NE(decode_raw(records[0], scratch).find("3: \"brain.Event:2\""), std::string::npos);
  // SessionLog (field 7) {status (1) = START (1)} one past the resumed step: TensorBoard keeps the
  // earlier points with step < 11, i.e. up to the resumed step 10, and drops the orphaned 11, 12, ….
  const std::string start = decode_raw(records[1], scratch);
  expect_wall_time_between(start, before, after);
  EXPECT_NE(start.find("\n2: 11\n7 {\n  1: 1\n}\n"), std::string::npos) << start;
  EXPECT_EQ(decode_raw(records[2], scratch), expected_scalar(1700000100.0, 11, "train/loss", 0.75));
}

TEST(TensorBoardWriter, UncreatableDirectoryIsAnError) {
  ScratchDir scratch;
  test::write_bytes(scratch / "file", "x");
  EXPECT_UPCYCLE_ERROR(TensorBoardWriter(scratch / "file" / "tensorboard", -1), "cannot create TensorBoard directory",
                       (scratch / "file" / "tensorboard").string());
}

}  // namespace
}  // namespace upcycle::train
