// Host memory for the host backends (see host_memory.h).
#include "backend/host_memory.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "backend/ref/ref_backend.h"

namespace upcycle::backend {

void* HostMemoryBackend::allocate(size_t bytes) {
  // calloc's blocks are aligned for every scalar type (16 bytes on glibc, page-aligned when mmap'd).
  void* ptr = std::calloc(bytes == 0 ? 1 : bytes, 1);
  if (ptr == nullptr) throw std::bad_alloc();
  return ptr;
}

void HostMemoryBackend::deallocate(void* ptr) noexcept { std::free(ptr); }

void HostMemoryBackend::fill_zero(void* ptr, size_t bytes) {
  if (bytes > 0) std::memset(ptr, 0, bytes);
}

void HostMemoryBackend::upload(void* dst, const void* host_src, size_t bytes) {
  if (bytes > 0 && dst != host_src) std::memcpy(dst, host_src, bytes);
}

void HostMemoryBackend::download(void* host_dst, const void* src, size_t bytes) {
  if (bytes > 0 && host_dst != src) std::memcpy(host_dst, src, bytes);
}

void HostMemoryBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes > 0 && dst != src) std::memmove(dst, src, bytes);
}

Backend& host_memory() {
  static RefBackend backend;  // stateless: safe to share between threads for allocate/deallocate
  return backend;
}

}  // namespace upcycle::backend
