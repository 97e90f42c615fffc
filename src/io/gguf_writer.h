// GGUF writing (version 3, little-endian, alignment 32 — the layout gguf_file.h reads). Metadata and
// tensor declarations come first, so every offset is fixed before any data exists; write() then lays
// down the header and streams each tensor's bytes through a callback, into a hidden temporary file
// beside the destination that is fsynced and renamed into place: the file appears whole or not at
// all. Tensors are laid out in declaration order, each padded to the alignment, as gguf-py does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "io/ggml_types.h"

namespace upcycle {

class GgufWriter {
 public:
  void add_string(const std::string& key, const std::string& value);
  void add_u32(const std::string& key, uint32_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_strings(const std::string& key, const std::vector<std::string>& values);
  void add_i32s(const std::string& key, const std::vector<int32_t>& values);

  // ne in ggml order (ne[0] = row length); the row length must be a whole number of blocks.
  void add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type);
  uint64_t tensor_bytes(const std::string& name) const;

  // Receives a tensor's bytes: `bytes` land at `offset` within that tensor's data.
  using TensorSink = std::function<void(const std::string& name, std::span<const std::byte> bytes, uint64_t offset)>;
  // Writes `path` atomically; `produce` must write every byte of every declared tensor exactly once
  // (checked: a tensor left short is an internal error). Errors name `path`.
  void write(const std::filesystem::path& path, const std::function<void(const TensorSink&)>& produce) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    uint64_t offset = 0, nbytes = 0;
  };
  const Tensor& tensor(const std::string& name) const;
  void key(const std::string& name, uint32_t type);
  std::string kv_;  // encoded key/value pairs
  uint64_t kv_count_ = 0;
  std::vector<Tensor> tensors_;
  uint64_t data_size_ = 0;
};

}  // namespace upcycle
