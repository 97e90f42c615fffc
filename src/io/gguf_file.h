// GGUF reading (llama.cpp's model file, versions 2 and 3, little-endian):
//   "GGUF" | u32 version | u64 tensor_count | u64 kv_count | kv_count × (key, u32 type, value)
//   | tensor_count × (name, u32 n_dims, n_dims × u64 ne, u32 ggml type, u64 offset) | padding
//   | data section (starts at the next multiple of general.alignment, default 32)
// Strings are u64 length + UTF-8 bytes; arrays are u32 element type + u64 count + elements.
// Opening maps the file and validates everything but the tensor bytes: every read is bounds-checked
// (a truncated or corrupt file is an Error naming the key or tensor being read, never a crash), no
// allocation is sized from a count in the file before the bytes backing it have been checked, keys
// and tensor names are unique, general.alignment is a power of two, every tensor has ≤ 4 dims, a
// known ggml type, a row length that is a whole number of blocks, an aligned offset, and bytes that
// lie inside the data section without overlapping another tensor. Arrays are not copied at open:
// string_array()/int_array() decode them on request. Tensor bytes are read with pread
// (read_tensor_bytes), so memory holds what the caller asks for, not the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/shape.h"
#include "io/ggml_types.h"

namespace upcycle {

enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
std::string_view gguf_type_name(GgufType type);  // "UINT32", "STRING", "ARRAY", ...

struct GgufValue {
  GgufType type = GgufType::kU8;
  GgufType element_type = GgufType::kU8;  // arrays only
  uint64_t count = 1;                     // arrays: number of elements
  uint64_t offset = 0;                    // file offset of the payload (arrays: of the first element)
  uint64_t size = 0;                      // payload bytes
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the row length (fastest-varying)
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;  // relative to the data section
  uint64_t nbytes = 0;
  uint64_t numel() const;
  int64_t row_length() const { return ne.empty() ? 1 : ne[0]; }
  uint64_t rows() const;       // numel / row_length
  uint64_t row_bytes() const;  // bytes of one row (whole blocks)
  Shape hf_shape() const;      // ne reversed: torch's row-major shape
};

class GgufFile {
 public:
  static GgufFile open(const std::filesystem::path& path);
  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::filesystem::path& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return file_size_; }

  // Metadata keys in file order.
  const std::vector<std::string>& keys() const { return key_order_; }
  const GgufValue* find(std::string_view key) const;  // nullptr when absent
  // Typed access: nullopt when the key is absent; an Error naming the key and the file when it has
  // another type. Integers accept every integer type whose value fits; floats accept F32 and F64.
  std::optional<uint64_t> get_uint(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  std::vector<std::string> string_array(std::string_view key) const;  // Error unless an array of strings
  std::vector<int64_t> int_array(std::string_view key) const;         // Error unless an array of integers
  // A one-line rendering of a value for messages ("llama", 4096, [3 × STRING]).
  std::string describe(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // file order
  const GgufTensorInfo* find_tensor(std::string_view name) const;          // nullptr when absent
  // Reads bytes [byte_offset, byte_offset + size) of a tensor's data into dst.
  void read_tensor_bytes(const GgufTensorInfo& tensor, uint64_t byte_offset, uint64_t size, std::byte* dst) const;

 private:
  GgufFile() = default;
  void close();
  friend class GgufParser;
  std::filesystem::path path_;
  int fd_ = -1;
  const std::byte* map_ = nullptr;
  uint64_t file_size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::string> key_order_;
  std::map<std::string, GgufValue, std::less<>> values_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace upcycle
