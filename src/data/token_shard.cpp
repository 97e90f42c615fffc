// Token shards (see token_shard.h). Header fields and ids are decoded as little-endian explicitly for
// the header; id arrays are read with pread straight into the caller's buffer (uint32) or through a
// bounded staging buffer (uint16), which assumes a little-endian host (static_assert below).
#include "data/token_shard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file_util.h"

namespace upcycle::data {
namespace {

static_assert(std::endian::native == std::endian::little, "token shards are read and written on little-endian hosts");

constexpr uint64_t kChunkTokens = uint64_t(1) << 16;  // staging buffer for uint16 reads and id scans
constexpr uint64_t kMaxVocab = uint64_t(1) << 31;     // ids are widened to int32

uint32_t le32(const unsigned char* b) {
  return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}
uint64_t le64(const unsigned char* b) { return uint64_t(le32(b)) | uint64_t(le32(b + 4)) << 32; }
void put_le32(unsigned char* b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put_le64(unsigned char* b, uint64_t v) {
  put_le32(b, uint32_t(v));
  put_le32(b + 4, uint32_t(v >> 32));
}

FileDescriptor open_shard_file(const std::filesystem::path& path, uint64_t* size_bytes) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw Error("cannot open token shard: " + errno_text(errno), path.string());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error("cannot stat token shard: " + errno_text(errno), path.string());
  if (!S_ISREG(st.st_mode)) throw Error("token shard is not a regular file", path.string());
  *size_bytes = uint64_t(st.st_size);
  return fd;
}

// Header fields → ShardInfo, or an Error naming the first problem.
ShardInfo parse_header(const unsigned char* h, uint64_t file_bytes, const std::filesystem::path& path) {
  if (std::memcmp(h, kShardMagic, sizeof kShardMagic) != 0)
    throw Error("not an upcycle token shard: bad magic (expected \"UPCYTOK\\0\")", path.string());
  const uint32_t version = le32(h + 8);
  if (version != kShardVersion)
    throw Error("unsupported token shard version " + std::to_string(version) + " (this upcycle reads version " +
                    std::to_string(kShardVersion) + ")",
                path.string());
  ShardInfo info;
  info.path = path;
  info.token_bytes = le32(h + 12);
  info.count = le64(h + 16);
  info.vocab_size = le64(h + 24);
  if (info.token_bytes != 2 && info.token_bytes != 4)
    throw Error("token width " + std::to_string(info.token_bytes) + " bytes is invalid (must be 2 or 4)", path.string());
  const uint64_t data_bytes = (file_bytes - kShardHeaderBytes);
  if (info.count > data_bytes / info.token_bytes || data_bytes != info.count * info.token_bytes)
    throw Error("file size " + std::to_string(file_bytes) + " bytes does not match the header's " +
                    std::to_string(info.count) + " tokens of " + std::to_string(info.token_bytes) +
                    " bytes (expected " + std::to_string(kShardHeaderBytes) + " + count·width bytes; truncated or corrupt)",
                path.string());
  if (info.vocab_size == 0) throw Error("token shard header has vocab size 0", path.string());
  if (info.vocab_size > kMaxVocab)
    throw Error("token shard vocab size " + std::to_string(info.vocab_size) + " exceeds 2^31", path.string());
  if (info.token_bytes == 2 && info.vocab_size > 65536)
    throw Error("token shard stores uint16 ids but its vocab size " + std::to_string(info.vocab_size) +
                    " exceeds 65536",
                path.string());
  return info;
}


}  // namespace

TokenShard TokenShard::open(const std::filesystem::path& path) {
  uint64_t size = 0;
  FileDescriptor fd = open_shard_file(path, &size);
  if (size < kShardHeaderBytes)
    throw Error("file of " + std::to_string(size) + " bytes is too short for a token shard header (" +
                    std::to_string(kShardHeaderBytes) + " bytes)",
                path.string());
  unsigned char header[kShardHeaderBytes];
  pread_all(fd.get(), header, sizeof header, 0, path);
  TokenShard shard;
  shard.info_ = parse_header(header, size, path);
  shard.fd_ = std::make_shared<const FileDescriptor>(std::move(fd));
  return shard;
}

void TokenShard::read(uint64_t begin, uint64_t n, int32_t* out) const {
  UPCYCLE_CHECK(begin <= info_.count && n <= info_.count - begin, "TokenShard::read beyond the shard");
  UPCYCLE_CHECK(fd_ != nullptr, "TokenShard::read on a shard that was not opened");
  const uint64_t offset = kShardHeaderBytes + begin * info_.token_bytes;
  if (info_.token_bytes == 4) {  // little-endian uint32 ids < 2^31 are their int32 values
    pread_all(fd_->get(), out, n * 4, offset, info_.path);
    return;
  }
  std::vector<uint16_t> buffer(size_t(std::min(n, kChunkTokens)));
  for (uint64_t done = 0; done < n;) {
    const uint64_t m = std::min(n - done, kChunkTokens);
    pread_all(fd_->get(), buffer.data(), m * 2, offset + done * 2, info_.path);
    for (uint64_t i = 0; i < m; ++i) out[done + i] = int32_t(buffer[size_t(i)]);
    done += m;
  }
}

void TokenShard::check_ids(uint64_t limit) const {
  std::vector<int32_t> ids(size_t(std::min(info_.count, kChunkTokens)));
  for (uint64_t done = 0; done < info_.count;) {
    const uint64_t m = std::min(info_.count - done, kChunkTokens);
    read(done, m, ids.data());
    for (uint64_t i = 0; i < m; ++i) {
      const uint32_t id = uint32_t(ids[size_t(i)]);  // the stored bits: ids ≥ 2^31 read back negative
      if (id >= limit)
        throw Error("token id " + std::to_string(id) + " at position " + std::to_string(done + i) + " is ≥ " +
                        std::to_string(limit) + (limit == info_.vocab_size ? " (the shard's vocab size)" : " (the vocab size)"),
                    info_.path.string());
    }
    done += m;
  }
}

void write_token_shard(const std::filesystem::path& path, std::span<const uint32_t> ids, uint64_t vocab_size) {
  UPCYCLE_CHECK(vocab_size >= 1 && vocab_size <= kMaxVocab, "write_token_shard: vocab size out of range");
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] >= vocab_size)
      throw Error("token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) + " is ≥ the vocab size " +
                      std::to_string(vocab_size),
                  path.string());
  const uint32_t width = vocab_size <= 65536 ? 2 : 4;
  unsigned char header[kShardHeaderBytes];
  std::memcpy(header, kShardMagic, sizeof kShardMagic);
  put_le32(header + 8, kShardVersion);
  put_le32(header + 12, width);
  put_le64(header + 16, ids.size());
  put_le64(header + 24, vocab_size);

  write_file_atomically(path, "token shard", [&](int fd) {
    pwrite_all(fd, header, sizeof header, 0, path);
    if (width == 4) {
      pwrite_all(fd, ids.data(), ids.size() * 4, kShardHeaderBytes, path);
      return;
    }
    std::vector<uint16_t> buffer(size_t(std::min<uint64_t>(ids.size(), kChunkTokens)));
    for (size_t done = 0; done < ids.size();) {
      const size_t m = std::min(ids.size() - done, size_t(kChunkTokens));
      for (size_t i = 0; i < m; ++i) buffer[i] = uint16_t(ids[done + i]);
      pwrite_all(fd, buffer.data(), m * 2, kShardHeaderBytes + done * 2, path);
      done += m;
    }
  });
}

}  // namespace upcycle::data
