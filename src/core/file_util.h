// Small POSIX file helpers with user-facing errors: every failure names the file and the OS reason.
// Durability (fsync of files and directories) lives here so every writer gets it the same way.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace upcycle {

// Reads a whole file as text; throws Error("cannot read <what>: <reason>", path).
std::string read_text_file(const std::filesystem::path& path, std::string_view what);
// Writes text to path (create/truncate) and fsyncs it; throws Error naming path.
void write_text_file(const std::filesystem::path& path, std::string_view text);
// Writes `path` so that it is either its old self or complete, never half-written: `fill(fd)` writes a
// hidden temp file beside it (".<name>.tmp.<pid>"), which is fsynced and renamed over `path`, then the
// directory is fsynced. On any error the temp file is removed, `path` is untouched, and the Error names
// `path` ("cannot write <what>: …"). Errors `fill` throws pass through (name `path` in them).
void write_file_atomically(const std::filesystem::path& path, std::string_view what,
                           const std::function<void(int fd)>& fill);
void write_text_file_atomically(const std::filesystem::path& path, std::string_view what, std::string_view text);
// Copies `size` bytes from in_fd at in_offset to out_fd at out_offset: in the kernel (copy_file_range)
// where the filesystems allow it, else through a bounded buffer. Errors name the file at fault.
void copy_file_bytes(int in_fd, uint64_t in_offset, int out_fd, uint64_t out_offset, uint64_t size,
                     const std::filesystem::path& in_path, const std::filesystem::path& out_path);

void fsync_path(const std::filesystem::path& path);  // a file or a directory
// "<reason>" from errno, e.g. "No space left on device"; EMFILE adds the process's limit.
std::string errno_text(int err);
// Raises the soft limit on open files to the hard one. A checkpoint keeps one descriptor per shard
// open while it is read or written, and an index may name thousands of shards, beyond the common
// soft default of 1024 (the hard limit is usually far higher). Called once by main().
void raise_open_file_limit();

// RAII file descriptor.
class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.release()) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor();
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Writes all of [data, data+size) at offset (pwrite loop); throws Error naming path on failure
// (including ENOSPC and EFBIG, reported as "no space left"/"file too large").
void pwrite_all(int fd, const void* data, uint64_t size, uint64_t offset, const std::filesystem::path& path);
// Reads exactly size bytes at offset; a short file throws Error("unexpected end of file", path).
void pread_all(int fd, void* data, uint64_t size, uint64_t offset, const std::filesystem::path& path);

}  // namespace upcycle
