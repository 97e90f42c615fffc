// Reading backend memory on the host, explicitly: HostView<T> is the host's read-only look at `n`
// elements of T at a backend pointer. On a host-accessible backend (ref, cpu, cpu-bf16) it aliases
// the memory (no copy, no extra RSS); on any other backend it downloads them once into memory it
// owns. Call sites that read model results on the host (logits, hidden states, saved weights) build
// one, so every readback is visible where it happens and a device backend pays exactly one transfer.
// Invariant: the aliasing view is valid only while the memory behind it is unchanged (until the
// next op that writes it); a downloaded view is a snapshot. Non-goals: writing back, partial reads.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "backend/backend.h"

namespace upcycle::backend {

template <class T>
class HostView {
 public:
  HostView(Backend& backend, const T* data, size_t count) {
    if (backend.host_accessible()) {
      view_ = {data, count};
      return;
    }
    copy_.resize(count);
    if (count > 0) backend.download(copy_.data(), data, count * sizeof(T));
    view_ = copy_;
  }
  // Moving a std::vector keeps its heap block, so view_ stays valid for a downloaded copy too.
  HostView(HostView&&) noexcept = default;
  HostView& operator=(HostView&&) noexcept = default;
  HostView(const HostView&) = delete;
  HostView& operator=(const HostView&) = delete;

  std::span<const T> span() const { return view_; }
  const T* data() const { return view_.data(); }
  size_t size() const { return view_.size(); }
  const T& operator[](size_t i) const { return view_[i]; }

 private:
  std::vector<T> copy_;  // empty when aliasing
  std::span<const T> view_;
};

// Deduces T: `auto logits = host_view(be, model.forward(...), T * V);`.
template <class T>
HostView<T> host_view(Backend& backend, const T* data, size_t count) {
  return HostView<T>(backend, data, count);
}

}  // namespace upcycle::backend
