// Hand-built GGUF bytes for reader and CLI tests: every field is appended explicitly, so malformed
// files (wrong counts, bad types, misaligned offsets, truncation) can be made byte by byte.
// finish() pads the tensor-info section to the alignment and appends the data section as given.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace upcycle::test {

class GgufBuilder {
 public:
  // Header fields; counts are written as given (they may lie, on purpose).
  GgufBuilder& header(uint64_t tensor_count, uint64_t kv_count, uint32_t version = 3, uint32_t magic = 0x46554747) {
    put(magic);
    put(version);
    put(tensor_count);
    put(kv_count);
    return *this;
  }
  GgufBuilder& str(const std::string& s) {
    put(uint64_t(s.size()));
    bytes_ += s;
    return *this;
  }
  template <typename T>
  GgufBuilder& put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    bytes_.append(b, sizeof(T));
    return *this;
  }
  GgufBuilder& kv_string(const std::string& key, const std::string& value) { return str(key).put(uint32_t(8)).str(value); }
  GgufBuilder& kv_u32(const std::string& key, uint32_t value) { return str(key).put(uint32_t(4)).put(value); }
  GgufBuilder& kv_f32(const std::string& key, float value) { return str(key).put(uint32_t(6)).put(value); }
  GgufBuilder& kv_bool(const std::string& key, uint8_t value) { return str(key).put(uint32_t(7)).put(value); }
  GgufBuilder& kv_strings(const std::string& key, const std::vector<std::string>& values) {
    str(key).put(uint32_t(9)).put(uint32_t(8)).put(uint64_t(values.size()));
    for (const auto& v : values) str(v);
    return *this;
  }
  GgufBuilder& kv_i32s(const std::string& key, const std::vector<int32_t>& values) {
    str(key).put(uint32_t(9)).put(uint32_t(5)).put(uint64_t(values.size()));
    for (int32_t v : values) put(v);
    return *this;
  }
  GgufBuilder& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).put(uint32_t(ne.size()));
    for (uint64_t n : ne) put(n);
    return put(type).put(offset);
  }
  // Pads to `alignment` and appends the data section.
  std::string finish(const std::string& data, uint64_t alignment = 32) {
    while (bytes_.size() % alignment) bytes_ += '\0';
    return bytes_ + data;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

}  // namespace upcycle::test
