// POSIX file helpers (see file_util.h).
#include "core/file_util.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/writer_liveness.h"

namespace upcycle {

std::string errno_text(int err) {
  std::string text = std::strerror(err);
  if (err == EMFILE) {  // a checkpoint holds one descriptor per shard while it is read or written
    struct rlimit limit {};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0)
      text += " (this process may open " + std::to_string(limit.rlim_cur) + ": raise `ulimit -n`)";
  }
  return text;
}

void raise_open_file_limit() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);  // best effort: on failure EMFILE errors still say the limit
}

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

std::string read_text_file(const std::filesystem::path& path, std::string_view what) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw Error("cannot read " + std::string(what) + ": " + errno_text(errno), path.string());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error("cannot stat " + std::string(what) + ": " + errno_text(errno), path.string());
  if (S_ISDIR(st.st_mode)) throw Error("cannot read " + std::string(what) + ": it is a directory", path.string());
  std::string text(static_cast<size_t>(st.st_size), '\0');
  pread_all(fd.get(), text.data(), text.size(), 0, path);
  return text;
}

void pwrite_all(int fd, const void* data, uint64_t size, uint64_t offset, const std::filesystem::path& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::pwrite(fd, p, size > (1u << 30) ? (1u << 30) : size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      if (err == ENOSPC) throw Error("cannot write: no space left on device", path.string());
      if (err == EFBIG) throw Error("cannot write: file too large for this filesystem or limit", path.string());
      throw Error("cannot write: " + errno_text(err), path.string());
    }
    if (n == 0) throw Error("cannot write: the device accepted no bytes", path.string());
    p += n;
    size -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

void pread_all(int fd, void* data, uint64_t size, uint64_t offset, const std::filesystem::path& path) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    ssize_t n = ::pread(fd, p, size > (1u << 30) ? (1u << 30) : size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot read: " + errno_text(errno), path.string());
    }
    if (n == 0) throw Error("unexpected end of file", path.string());
    p += n;
    size -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

void fsync_path(const std::filesystem::path& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw Error("cannot open for fsync: " + errno_text(errno), path.string());
  if (::fsync(fd.get()) != 0) throw Error("fsync failed: " + errno_text(errno), path.string());
}

void write_text_file(const std::filesystem::path& path, std::string_view text) {
  FileDescriptor fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) throw Error("cannot create file: " + errno_text(errno), path.string());
  pwrite_all(fd.get(), text.data(), text.size(), 0, path);
  if (::fsync(fd.get()) != 0) throw Error("fsync failed: " + errno_text(errno), path.string());
}

namespace {

// A writer SIGKILLed between creating its temporary file and the rename leaves ".NAME.tmp.PID" behind
// for good (found by the kill soak, tests/soak/kill_soak.py). Each write of NAME removes those whose
// writer is provably dead (gone, a zombie, or its PID reused by another program: core/writer_liveness.h,
// the same test as for staging directories); one of a possibly live writer of the same file is left alone.
void remove_dead_temp_siblings(const std::filesystem::path& dir, const std::string& name) {
  const std::string prefix = "." + name + ".tmp.";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string sibling = entry.path().filename().string();
    if (sibling.size() <= prefix.size() || sibling.size() > prefix.size() + 9 || sibling.rfind(prefix, 0) != 0) continue;
    const std::string pid_text = sibling.substr(prefix.size());
    if (!std::all_of(pid_text.begin(), pid_text.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    if (!writer_may_be_alive(pid)) std::filesystem::remove(entry.path(), ec);
  }
}

}  // namespace

void write_file_atomically(const std::filesystem::path& path, std::string_view what,
                           const std::function<void(int fd)>& fill) {
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const std::filesystem::path temp = dir / ("." + path.filename().string() + ".tmp." + std::to_string(::getpid()));
  const std::string name(what);
  {
    FileDescriptor fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) throw Error("cannot write " + name + ": " + errno_text(errno), path.string());
    try {
      fill(fd.get());
      if (::fsync(fd.get()) != 0) throw Error("cannot sync " + name + ": " + errno_text(errno), path.string());
    } catch (...) {
      ::unlink(temp.c_str());
      throw;
    }
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    throw Error("cannot move " + name + " into place: " + errno_text(err), path.string());
  }
  remove_dead_temp_siblings(dir, path.filename().string());
  fsync_path(dir);
}

void write_text_file_atomically(const std::filesystem::path& path, std::string_view what, std::string_view text) {
  write_file_atomically(path, what, [&](int fd) { pwrite_all(fd, text.data(), text.size(), 0, path); });
}

void copy_file_bytes(int in_fd, uint64_t in_offset, int out_fd, uint64_t out_offset, uint64_t size,
                     const std::filesystem::path& in_path, const std::filesystem::path& out_path) {
  while (size > 0) {
    loff_t in = static_cast<loff_t>(in_offset), out = static_cast<loff_t>(out_offset);
    ssize_t n = ::copy_file_range(in_fd, &in, out_fd, &out, std::min<uint64_t>(size, 1u << 30), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) break;
    if (n < 0 && errno == ENOSPC) throw Error("cannot write: no space left on device", out_path.string());
    if (n < 0) throw Error("cannot copy: " + errno_text(errno), out_path.string());
    if (n == 0) throw Error("unexpected end of file", in_path.string());
    in_offset += static_cast<uint64_t>(n);
    out_offset += static_cast<uint64_t>(n);
    size -= static_cast<uint64_t>(n);
  }
  // The kernel refused (e.g. across filesystems): copy the rest through user space.
  std::vector<char> buffer(std::min<uint64_t>(size, 16u << 20));
  while (size > 0) {
    uint64_t chunk = std::min<uint64_t>(size, buffer.size());
    pread_all(in_fd, buffer.data(), chunk, in_offset, in_path);
    pwrite_all(out_fd, buffer.data(), chunk, out_offset, out_path);
    in_offset += chunk;
    out_offset += chunk;
    size -= chunk;
  }
}

}  // namespace upcycle
