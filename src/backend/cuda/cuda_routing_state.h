// Device scratch of the cuda backend's MoE routing and loss kernels and of its optimizer reductions
// (owned by cuda_moe_routing.cu; cuda_optimizer.cu's l2_norm borrows `partials` and `result`): buffers
// sized on first use for the largest request seen, reused across layers and steps, freed with the backend.
// Invariant: a buffer is only ever regrown after the stream has drained (DeviceScratch::reserve
// synchronises first), so a kernel still queued on the old block never reads freed memory.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace upcycle::backend::cuda_detail {

// One growable device allocation.
class DeviceScratch {
 public:
  DeviceScratch() = default;
  ~DeviceScratch();
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;

  // At least `bytes` bytes of device memory (contents unspecified); regrowing waits for `stream`.
  void* reserve(size_t bytes, cudaStream_t stream);
  template <typename T>
  T* get(size_t count, cudaStream_t stream) {
    return static_cast<T*>(reserve(count * sizeof(T), stream));
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

struct RoutingState {
  explicit RoutingState(cudaStream_t stream);
  ~RoutingState();
  RoutingState(const RoutingState&) = delete;
  RoutingState& operator=(const RoutingState&) = delete;

  template <typename T>
  T* get(DeviceScratch& slot, size_t count) {
    return slot.get<T>(count, stream);
  }

  cudaStream_t stream = nullptr;
  // moe_route: radix-sort keys and values (input and sorted output), cub's temporary storage, the
  // capacity cut's keep flag per (token, pick) and per sorted candidate, the kept candidates' output
  // positions, each expert's first candidate, and the first non-finite score / bias index.
  DeviceScratch keys, keys_sorted, values, values_sorted, cub_temp, keep_pair, keep_sorted, position, expert_begin,
      bad_index;
  // moe_route_backward: the (token, expert) → assignment map, Σ_a g·p per token, and A = Σ counts.
  DeviceScratch assignment_TE, per_token, total;
  // Fixed-order reductions: per-column / per-row / per-block partial sums and their total.
  DeviceScratch partials, result;
};

}  // namespace upcycle::backend::cuda_detail
