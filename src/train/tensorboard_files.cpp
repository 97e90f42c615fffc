// RUN_DIR/tensorboard/ as a set of files (see tensorboard_files.h): names that sort in write order and
// the trim a resume applies. Records are read with the TFRecord framing of tensorboard_writer.cpp
// (uint64 length, masked CRC-32C of it, data, masked CRC-32C of the data); a record is read whole
// before its step is looked at, so a file is streamed in one pass whatever its size.
#include "train/tensorboard_files.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <system_error>

#include "core/error.h"
#include "core/file_util.h"
#include "train/tensorboard_writer.h"

namespace upcycle::train {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kPrefix = "events.out.tfevents.";

std::string name_for(int64_t seconds, std::string_view host, int64_t pid) {
  return std::string(kPrefix) + std::to_string(seconds) + "." + std::string(host) + "." + std::to_string(pid) +
         ".upcycle";
}

// The decimal seconds field right after the prefix, if there is one.
std::optional<int64_t> seconds_field(std::string_view name) {
  if (!name.starts_with(kPrefix)) return std::nullopt;
  name.remove_prefix(kPrefix.size());
  int64_t seconds = 0;
  size_t digits = 0;
  for (; digits < name.size() && name[digits] >= '0' && name[digits] <= '9'; ++digits) {
    if (digits >= 18) return std::nullopt;  // not a time this side of the year 30 billion
    seconds = seconds * 10 + (name[digits] - '0');
  }
  if (digits == 0) return std::nullopt;
  return seconds;
}

bool get_varint(std::string_view bytes, size_t& at, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (at >= bytes.size()) return false;
    const auto byte = static_cast<unsigned char>(bytes[at++]);
    value |= uint64_t{byte & 0x7Fu} << shift;
    if ((byte & 0x80u) == 0) return true;
  }
  return false;  // more than 10 bytes: not a varint
}

uint64_t load_u64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint32_t load_u32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// Reads `count` bytes; false at a clean or torn end of file, an Error on a read failure.
bool read_exactly(std::FILE* in, void* out, size_t count, const fs::path& file) {
  if (std::fread(out, 1, count, in) == count) return true;
  if (std::ferror(in)) throw Error("cannot read event file: " + errno_text(errno), file.string());
  return false;
}

// Byte offset of the first record to drop: the first summary with step > keep_through_step, or the
// first record that cannot be read (then nothing after it can be trusted, and TensorBoard stops there
// too); the file's size when every record stays. Records without a summary (file_version, SessionLog)
// carry no points: a START past the step is followed by a step-0 evaluation when a run resumed before
// its first checkpoint evaluates at start, so it must not end the kept part.
struct Cut {
  uint64_t offset = 0, size = 0;
};
Cut find_cut(const fs::path& file, int64_t keep_through_step) {
  std::unique_ptr<std::FILE, FileCloser> in(std::fopen(file.c_str(), "rbe"));
  if (!in) throw Error("cannot open event file: " + errno_text(errno), file.string());
  std::error_code ec;
  const uint64_t size = fs::file_size(file, ec);
  if (ec) throw Error("cannot read event file: " + ec.message(), file.string());
  uint64_t offset = 0;
  std::string data;
  while (offset < size) {
    unsigned char header[12], footer[4];
    if (!read_exactly(in.get(), header, sizeof header, file)) break;
    const uint64_t length = load_u64(header);
    if (load_u32(header + 8) != masked_crc32c(header, 8) || length > size - offset - 12) break;
    data.resize(length);
    if (!read_exactly(in.get(), data.data(), length, file) || !read_exactly(in.get(), footer, 4, file) ||
        load_u32(footer) != masked_crc32c(data.data(), data.size()))
      break;
    const std::optional<EventHeader> event = event_header(data);
    if (!event || (event->summary && event->step > keep_through_step)) break;
    offset += 12 + length + 4;
  }
  return {offset, size};
}

}  // namespace

std::string next_event_file_name(const fs::path& dir, int64_t now_s, std::string_view host, int64_t pid) {
  std::string latest;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with(kPrefix) && name > latest) latest = name;
  }
  if (ec) throw Error("cannot list TensorBoard directory: " + ec.message(), dir.string());
  std::string name = name_for(now_s, host, pid);
  if (name > latest) return name;
  const std::optional<int64_t> seconds = seconds_field(latest);
  if (seconds && *seconds + 1 > now_s) {
    std::string later = name_for(*seconds + 1, host, pid);
    if (later > latest) return later;
  }
  return name;  // a foreign name no time can sort after (more digits than ours): nothing better to do
}

bool is_upcycle_event_file(std::string_view name) {
  if (!name.starts_with(kPrefix)) return false;
  if (name.ends_with(".upcycle")) return true;
  const size_t dot = name.rfind('.');  // ".N": a second file of the same second and process
  const std::string_view number = name.substr(dot + 1);
  return !number.empty() && number.find_first_not_of("0123456789") == std::string_view::npos &&
         name.substr(0, dot).ends_with(".upcycle");
}

std::optional<EventHeader> event_header(std::string_view payload) {
  EventHeader header;
  size_t at = 0;
  while (at < payload.size()) {
    uint64_t key = 0, value = 0;
    if (!get_varint(payload, at, key)) return std::nullopt;
    switch (key & 7u) {
      case 0:  // varint
        if (!get_varint(payload, at, value)) return std::nullopt;
        if ((key >> 3) == 2) header.step = static_cast<int64_t>(value);
        break;
      case 1:  // fixed64
        if (payload.size() - at < 8) return std::nullopt;
        at += 8;
        break;
      case 2:  // length-delimited
        if (!get_varint(payload, at, value) || payload.size() - at < value) return std::nullopt;
        if ((key >> 3) == 5) header.summary = true;
        at += value;
        break;
      case 5:  // fixed32
        if (payload.size() - at < 4) return std::nullopt;
        at += 4;
        break;
      default:  // groups (3, 4) are not in event.proto; 6, 7 do not exist
        return std::nullopt;
    }
  }
  return header;
}

int64_t trim_event_files(const fs::path& dir, int64_t keep_through_step) {
  std::error_code ec;
  int64_t trimmed = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!is_upcycle_event_file(it->path().filename().string()) || !it->is_regular_file()) continue;
    const fs::path file = it->path();
    const Cut cut = find_cut(file, keep_through_step);
    if (cut.offset == cut.size) continue;
    if (::truncate(file.c_str(), static_cast<off_t>(cut.offset)) != 0)
      throw Error("cannot trim event file: " + errno_text(errno), file.string());
    fsync_path(file);
    trimmed += 1;
  }
  if (ec && ec != std::errc::no_such_file_or_directory)
    throw Error("cannot list TensorBoard directory: " + ec.message(), dir.string());
  return trimmed;
}

}  // namespace upcycle::train
