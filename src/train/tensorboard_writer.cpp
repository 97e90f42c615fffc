// TensorBoard event files (see tensorboard_writer.h). Field numbers, from tensorboard/compat/proto:
// Event{wall_time = 1 double, step = 2 int64, file_version = 3 string, summary = 5 Summary,
// session_log = 7 SessionLog (6 is the deprecated log_message)}; Summary{value = 1 repeated Value};
// Value{tag = 1 string, simple_value = 2 float}; SessionLog{status = 1 enum, START = 1}.
// Every record is written through at once (unbuffered) so a live `tensorboard --logdir` sees it.
#include "train/tensorboard_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/file_util.h"
#include "train/tensorboard_files.h"

namespace upcycle::train {
namespace {

namespace fs = std::filesystem;

// CRC-32C (Castagnoli), reflected: polynomial 0x1EDC6F41 bit-reversed is 0x82F63B78.
constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    table[i] = crc;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// Protobuf wire format, just what Event needs: varints, fixed64/fixed32, length-delimited fields.
enum class Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void put_key(std::string& out, uint32_t field, Wire wire) {
  put_varint(out, (uint64_t{field} << 3) | static_cast<uint32_t>(wire));
}

template <typename T>
void put_little_endian(std::string& out, T value) {
  static_assert(std::endian::native == std::endian::little, "event files are little-endian; add a byte swap");
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

void put_bytes_field(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, Wire::kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// Event header fields shared by every record: wall_time (1) and step (2), both always present.
std::string event_prefix(double wall_time_s, int64_t step) {
  std::string event;
  put_key(event, 1, Wire::kFixed64);
  put_little_endian(event, wall_time_s);
  put_key(event, 2, Wire::kVarint);
  put_varint(event, static_cast<uint64_t>(step));  // int64: negative values as 10-byte two's complement
  return event;
}

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  std::string host(name);
  for (char& c : host)
    if (c == '/') c = '_';
  return host;
}

// Opens a new event file in `dir`, named to sort after every event file already there
// (tensorboard_files.h). A name taken in between (another writer racing this one) gets ".1", ".2", …:
// still "tfevents" files for TensorBoard, and still sorted after the name they extend.
std::FILE* create_event_file(const fs::path& dir, fs::path& file) {
  const std::string base =
      next_event_file_name(dir, static_cast<int64_t>(now_seconds()), host_name(), static_cast<int64_t>(::getpid()));
  for (int attempt = 0;; ++attempt) {
    file = dir / (attempt == 0 ? base : base + "." + std::to_string(attempt));
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      std::FILE* out = ::fdopen(fd, "w");
      if (out == nullptr) {
        const int err = errno;
        ::close(fd);
        throw Error("cannot open event file: " + errno_text(err), file.string());
      }
      // Unbuffered: each record goes out in one write, visible at once, and a failed write leaves
      // nothing in a buffer that a later flush could splice into the file.
      std::setvbuf(out, nullptr, _IONBF, 0);
      return out;
    }
    if (errno != EEXIST || attempt >= 1000) throw Error("cannot create event file: " + errno_text(errno), file.string());
  }
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) crc = kCrc32cTable[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t crc = crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const fs::path& dir, int64_t resume_step) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create TensorBoard directory: " + ec.message(), dir.string());
  // Before the new file exists: the earlier files lose their points past the resumed step, as
  // metrics.jsonl does, so every loader shows what the log holds (tensorboard_files.h).
  if (resume_step >= 0) trim_event_files(dir, resume_step);
  out_ = create_event_file(dir, file_);

  const double wall_time = now_seconds();
  std::string version = event_prefix(wall_time, 0);
  put_bytes_field(version, 3, "brain.Event:2");
  write_record(version);
  // Every file, a fresh run's too, carries a SessionLog START at resume_step + 1 (0 when fresh).
  // TensorBoard's Python loaders drop every earlier point whose step is >= the START's step, so
  // points up to the resumed step survive and the orphaned ones after it go. The trim above already
  // cut those from the files; the START still matters to a Python loader that read them before the
  // trim (a TensorBoard left running across the resume). The fresh run's START is needed because the
  // v2 loader (plugin_event_accumulator, --load_fast=false) takes a run's first START for the start
  // of the first session and purges nothing on it: without it, the first resume's would be ignored.
  // The Rust data server ignores SessionLog: the trim is what it relies on.
  std::string session_log;
  put_key(session_log, 1, Wire::kVarint);
  put_varint(session_log, 1);  // SessionLog.START
  std::string start = event_prefix(wall_time, resume_step < 0 ? 0 : resume_step + 1);
  put_bytes_field(start, 7, session_log);
  write_record(start);
}

TensorBoardWriter::~TensorBoardWriter() {
  if (out_ != nullptr) std::fclose(out_);
}

void TensorBoardWriter::scalar(std::string_view tag, double value, int64_t step, double wall_time_s) {
  // Steps never decrease within a file: a resume's trim cuts at the first point past its step.
  UPCYCLE_CHECK(step >= last_step_, "TensorBoard scalar steps must not decrease within an event file");
  last_step_ = step;
  std::string summary_value;
  put_bytes_field(summary_value, 1, tag);
  put_key(summary_value, 2, Wire::kFixed32);
  put_little_endian(summary_value, static_cast<float>(value));
  std::string summary;
  put_bytes_field(summary, 1, summary_value);
  std::string event = event_prefix(wall_time_s, step);
  put_bytes_field(event, 5, summary);
  write_record(event);
}

void TensorBoardWriter::flush() {
  if (std::fflush(out_) != 0) throw Error("cannot write event file: " + errno_text(errno), file_.string());
  if (::fsync(::fileno(out_)) != 0) throw Error("fsync failed: " + errno_text(errno), file_.string());
}

// TFRecord: uint64 LE length, masked CRC-32C of those 8 bytes, the data, masked CRC-32C of the data.
void TensorBoardWriter::write_record(std::string_view data) {
  std::string record;
  record.reserve(data.size() + 16);
  put_little_endian(record, static_cast<uint64_t>(data.size()));
  put_little_endian(record, masked_crc32c(record.data(), 8));
  record.append(data);
  put_little_endian(record, masked_crc32c(data.data(), data.size()));
  errno = 0;
  if (std::fwrite(record.data(), 1, record.size(), out_) != record.size()) {
    const int err = errno != 0 ? errno : EIO;
    std::clearerr(out_);
    if (err == ENOSPC) throw Error("cannot write event file: no space left on device", file_.string());
    throw Error("cannot write event file: " + errno_text(err), file_.string());
  }
}

}  // namespace upcycle::train
