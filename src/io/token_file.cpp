// Raw uint32 token files (see token_file.h). Bytes are decoded explicitly as little-endian so the
// format does not depend on the host.
#include "io/token_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "core/error.h"
#include "core/file_util.h"

namespace upcycle {
namespace {

FileDescriptor open_tokens(const std::filesystem::path& path, uint64_t* size_bytes) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw Error("cannot open token file: " + errno_text(errno), path.string());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error("cannot stat token file: " + errno_text(errno), path.string());
  if (!S_ISREG(st.st_mode)) throw Error("token file is not a regular file", path.string());
  *size_bytes = uint64_t(st.st_size);
  return fd;
}

}  // namespace

uint64_t token_file_count(const std::filesystem::path& path) {
  uint64_t size = 0;
  open_tokens(path, &size);
  if (size % 4 != 0)
    throw Error("token file size " + std::to_string(size) +
                    " bytes is not a multiple of 4 (expected raw little-endian uint32 token ids)",
                path.string());
  return size / 4;
}

std::vector<int32_t> read_token_file(const std::filesystem::path& path, uint64_t count, int64_t vocab_size) {
  uint64_t size = 0;
  FileDescriptor fd = open_tokens(path, &size);
  UPCYCLE_CHECK(count * 4 <= size, "read_token_file: count beyond the file");
  std::vector<unsigned char> bytes(size_t(count * 4));
  pread_all(fd.get(), bytes.data(), bytes.size(), 0, path);
  std::vector<int32_t> ids(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) {
    const unsigned char* b = bytes.data() + 4 * i;
    const uint32_t id = uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
    if (int64_t(id) >= vocab_size)
      throw Error("token id " + std::to_string(id) + " at position " + std::to_string(i) +
                      " is out of range: vocab_size is " + std::to_string(vocab_size),
                  path.string());
    ids[size_t(i)] = int32_t(id);
  }
  return ids;
}

}  // namespace upcycle
