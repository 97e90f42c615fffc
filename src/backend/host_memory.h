// Backend memory for the backends that compute on the host (ref, cpu, cpu-bf16): allocate is calloc
// (large blocks come zero-filled from the kernel without being touched, so a model that only runs
// forward never pays for its gradient pages), upload/download/copy are memcpy, and nothing is queued.
// host_memory() is the process-wide host backend for buffers no op computes on: tools that only
// load, inspect or save weights (analysis, save_model's callers, tests) build their TensorStore on it
// rather than on a backend they would have to choose. It is a RefBackend, so its ops work, but
// nothing computes with it by design: a model that computes takes the backend that computes.
// Non-goals: pooling, NUMA placement, huge pages.
#pragma once

#include "backend/backend.h"

namespace upcycle::backend {

class HostMemoryBackend : public Backend {
 public:
  bool host_accessible() const final { return true; }
  void* allocate(size_t bytes) final;
  void deallocate(void* ptr) noexcept final;
  void fill_zero(void* ptr, size_t bytes) final;
  void upload(void* dst, const void* host_src, size_t bytes) final;
  void download(void* host_dst, const void* src, size_t bytes) final;
  void copy(void* dst, const void* src, size_t bytes) final;
  void synchronize() final {}
};

Backend& host_memory();

}  // namespace upcycle::backend
