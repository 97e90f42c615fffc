// Shared test helpers: scratch directories, raw safetensors files built from hand-written headers
// (so malformed files can be made byte by byte), and running the built `upcycle` binary.
#pragma once

#include <cstdint>
#include <cstddef>
#include <filesystem>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

namespace upcycle::test {

// A fresh directory under the system temp dir, removed (recursively) on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Byte strings for hand-built files: bytes_of({0x00, 0x80}), and views between std::string and bytes.
std::string bytes_of(std::initializer_list<int> values);
std::span<const std::byte> as_bytes(const std::string& s);
std::string as_string(std::span<const std::byte> bytes);

void write_bytes(const std::filesystem::path& path, const std::string& bytes);
std::string read_bytes(const std::filesystem::path& path);
// `u64 LE len(header)` + header + data, exactly as given (no padding, no validation).
std::string safetensors_bytes(const std::string& header_json, const std::string& data);
void write_safetensors_raw(const std::filesystem::path& path, const std::string& header_json, const std::string& data);

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Resource limits for the child; 0 = unlimited.
struct RunLimits {
  uint64_t file_size = 0;    // RLIMIT_FSIZE: writes past it fail with EFBIG (how tests simulate a full disk)
  uint64_t cpu_seconds = 0;  // RLIMIT_CPU: the child is killed past it
  uint64_t address_space = 0;  // RLIMIT_AS bytes: a giant allocation fails instead of paging the machine
  uint64_t open_files_soft = 0;  // RLIMIT_NOFILE soft and hard limits (e.g. the common 1024 soft default)
  uint64_t open_files_hard = 0;
};
// Runs the built upcycle binary with args (no shell).
RunResult run_upcycle(const std::vector<std::string>& args, RunLimits limits = {});

}  // namespace upcycle::test
