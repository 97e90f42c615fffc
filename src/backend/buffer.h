// Backend memory as an owning, typed handle: Buffer<T> holds `size()` elements of T allocated by a
// Backend (zero-filled), and frees them when it goes. Model and training state (parameters,
// gradients, activations, the KV cache, optimizer moments, routing scratch) lives in Buffers, so a
// device backend owns it without model/ or train/ changing.
// Invariants: data() is a backend pointer — host memory that may be read directly only when
// backend().host_accessible() (ref, cpu, cpu-bf16); anything else crosses with upload/download,
// which are explicit so every readback is visible at its call site. A default-constructed Buffer is
// empty and belongs to no backend. Move-only: a copy would be a hidden allocation and transfer.
// Non-goals: views with strides, reference counting, pinned host staging (a CUDA concern).
#pragma once

#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"

namespace upcycle::backend {

template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& backend, size_t count) : backend_(&backend), size_(count) {
    if (count > 0) data_ = static_cast<T*>(backend.allocate(count * sizeof(T)));
  }
  ~Buffer() { release(); }
  Buffer(Buffer&& other) noexcept { swap(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release();
      swap(other);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  Backend* backend() const { return backend_; }

  // Makes this a zero-filled buffer of `count` elements on `backend` (old contents are dropped; the
  // memory is kept when the size and backend already match, then zeroed).
  void reset(Backend& backend, size_t count) {
    if (backend_ == &backend && size_ == count) return zero();
    *this = Buffer(backend, count);
  }
  // Makes this a buffer of `count` elements on `backend` for an op that overwrites all of it: the memory
  // and its stale contents are kept when the size and backend already match (no fill per step); a new
  // allocation is zero-filled as always.
  void resize_for_overwrite(Backend& backend, size_t count) {
    if (backend_ == &backend && size_ == count) return;
    *this = Buffer(backend, count);
  }
  void zero() {
    if (size_ > 0) backend_->fill_zero(data_, size_ * sizeof(T));
  }
  // Host → buffer, the whole buffer (host.size() == size()).
  void upload(std::span<const T> host) {
    UPCYCLE_CHECK(host.size() == size_, "Buffer::upload size mismatch");
    if (size_ > 0) backend_->upload(data_, host.data(), size_ * sizeof(T));
  }
  // Buffer → host, the whole buffer (host.size() == size()).
  void download(std::span<T> host) const {
    UPCYCLE_CHECK(host.size() == size_, "Buffer::download size mismatch");
    if (size_ > 0) backend_->download(host.data(), data_, size_ * sizeof(T));
  }
  std::vector<T> to_host() const {
    std::vector<T> host(size_);
    download(host);
    return host;
  }

 private:
  void release() noexcept {
    if (data_ != nullptr) backend_->deallocate(data_);
    data_ = nullptr, size_ = 0;
  }
  void swap(Buffer& other) noexcept {
    std::swap(backend_, other.backend_), std::swap(data_, other.data_), std::swap(size_, other.size_);
  }

  Backend* backend_ = nullptr;
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace upcycle::backend
