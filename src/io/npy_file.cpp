// .npy writing (see npy_file.h).
#include "io/npy_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>

#include "core/error.h"
#include "core/file_util.h"

namespace upcycle {
namespace {

constexpr size_t kArrayAlign = 64;  // numpy's ARRAY_ALIGN
constexpr size_t kPrefixLen = 10;   // magic (6) + version (2) + u16 header length (2)

std::string shape_tuple(const std::vector<int64_t>& shape) {
  // Python's repr of a tuple: (), (n,), (a, b).
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}


}  // namespace

std::string npy_header_f32(const std::vector<int64_t>& shape) {
  static_assert(std::endian::native == std::endian::little, "npy writer assumes a little-endian host");
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  const size_t unpadded = kPrefixLen + dict.size() + 1;  // + '\n'
  const size_t total = (unpadded + kArrayAlign - 1) / kArrayAlign * kArrayAlign;
  dict.append(total - unpadded, ' ');
  dict += '\n';
  UPCYCLE_CHECK(dict.size() <= 0xFFFF, "npy v1.0 header over 64 KiB");
  std::string header = "\x93NUMPY";
  header += char(1);
  header += char(0);
  header += char(dict.size() & 0xFF);
  header += char((dict.size() >> 8) & 0xFF);
  return header + dict;
}

void write_npy_f32(const std::filesystem::path& path, const float* data, const std::vector<int64_t>& shape) {
  uint64_t numel = 1;
  for (int64_t d : shape) {
    UPCYCLE_CHECK(d >= 0, "negative npy dimension");
    numel *= uint64_t(d);
  }
  const std::string header = npy_header_f32(shape);
  write_file_atomically(path, "output", [&](int fd) {
    pwrite_all(fd, header.data(), header.size(), 0, path);
    pwrite_all(fd, data, numel * sizeof(float), header.size(), path);
  });
}

}  // namespace upcycle
