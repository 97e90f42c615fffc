// SHA-256 (FIPS 180-4) of byte strings and files, for provenance records (e.g. which tokenizer.json
// produced a dataset). Streaming: update() any number of times, then hex_digest().
// Non-goals: HMAC, other hashes, speed beyond a plain portable loop (~200 MB/s is plenty here).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace upcycle {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::string hex_digest();  // finishes the hash; the object must not be updated afterwards

 private:
  void block(const unsigned char* p);
  std::array<uint32_t, 8> h_;
  unsigned char buffer_[64];
  size_t buffered_ = 0;
  uint64_t length_ = 0;  // bytes hashed so far
};

std::string sha256_hex(std::string_view bytes);
// Reads the file in chunks; throws Error("cannot read <what>: <reason>", path).
std::string sha256_file_hex(const std::filesystem::path& path, std::string_view what);

}  // namespace upcycle
