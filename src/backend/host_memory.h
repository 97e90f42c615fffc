// Backend memory for the backends that compute on the host (ref, cpu, cpu-bf16): allocate is calloc
// (large blocks come zero-filled from the kernel without being touched, so a model that only runs
// forward never pays for its gradient pages), upload/download/copy are memcpy, and nothing is queued.
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

}  // namespace upcycle::backend
