// safetensors reading: `u64 LE header length N`, N bytes of JSON, then the data section.
// Opening a file reads and validates only the header (lazy: a 100 GB checkpoint opens in
// milliseconds); tensor bytes are mapped on first access. Validation follows the reference reader:
// header within the file and ≤ 100 MB, well-formed JSON object without duplicate keys, known dtypes,
// integer shapes, `end - begin == numel × dtype size`, tensors tiling the data section exactly (no
// overlap, no hole, nothing past the end), `__metadata__` optional with string values.
// Every failure throws upcycle::Error naming the file and the offending tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"

namespace upcycle {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t begin = 0;  // offsets relative to the start of the data section; end exclusive
  uint64_t end = 0;
  uint64_t numel() const { return shape_numel(shape); }
  uint64_t nbytes() const { return end - begin; }
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by begin offset
  std::map<std::string, std::string> metadata;
};

inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

// Parses and validates a header's JSON text against a data section of `data_size` bytes.
// `file` only labels errors. Exposed separately for the fuzzer and for tests.
SafetensorsHeader parse_safetensors_header(std::string_view json_text, uint64_t data_size, const std::string& file);

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(std::string_view name) const;  // nullptr when absent
  uint64_t file_size() const { return file_size_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute file offset of the data section
  int fd() const { return fd_; }                         // for pread / copy_file_range by writers
  // The tensor's bytes; maps the file on first use. Valid while this object lives.
  std::span<const std::byte> data(const TensorInfo& tensor) const;

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;
  uint64_t file_size_ = 0;
  uint64_t data_offset_ = 0;
  int fd_ = -1;
  mutable void* map_ = nullptr;
};

}  // namespace upcycle
