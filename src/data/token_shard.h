// Token shards: the on-disk form of tokenized text. One shard = a 32-byte little-endian header then
// `count` token ids of 2 or 4 bytes each:
//   bytes 0–7 magic "UPCYTOK\0" · 8–11 uint32 version (1) · 12–15 uint32 token width in bytes (2|4)
//   · 16–23 uint64 count · 24–31 uint64 vocab size (every id < vocab size).
// open() validates what it can without reading the ids (magic, version, width, file size = 32 +
// count·width, vocab ≥ 1, uint16 only when vocab ≤ 65536); check_ids() scans the ids. Every problem is
// an Error naming the shard. Writing is atomic (temp file + fsync + rename).
// A TokenShard keeps its file open (one descriptor shared by copies) so reads are one pread each and
// safe from several threads.
// Non-goals: compression, memory mapping (reads are pread of the requested range).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>

namespace upcycle {
class FileDescriptor;
}

namespace upcycle::data {

inline constexpr char kShardMagic[8] = {'U', 'P', 'C', 'Y', 'T', 'O', 'K', '\0'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr uint64_t kShardHeaderBytes = 32;

struct ShardInfo {
  std::filesystem::path path;
  uint32_t token_bytes = 4;  // 2 = uint16 ids, 4 = uint32 ids
  uint64_t count = 0;        // tokens
  uint64_t vocab_size = 0;
};

class TokenShard {
 public:
  // Opens and validates the header and size; throws Error naming the file.
  static TokenShard open(const std::filesystem::path& path);

  const ShardInfo& info() const { return info_; }
  uint64_t count() const { return info_.count; }
  // Tokens [begin, begin + n) widened to int32 into out[n]; begin + n ≤ count() (UPCYCLE_CHECK).
  void read(uint64_t begin, uint64_t n, int32_t* out) const;
  // Scans every id; the first id ≥ limit throws Error("token id X at position P is ≥ …", path).
  void check_ids(uint64_t limit) const;

 private:
  ShardInfo info_;
  std::shared_ptr<const FileDescriptor> fd_;  // open for reading; shared by copies
};

// Writes ids (each < vocab_size, checked) atomically; uint16 when vocab_size ≤ 65536, else uint32.
void write_token_shard(const std::filesystem::path& path, std::span<const uint32_t> ids, uint64_t vocab_size);

}  // namespace upcycle::data
