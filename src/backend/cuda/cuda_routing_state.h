// Device scratch of the cuda backend's MoE routing and loss kernels (owned by cuda_moe_routing.cu):
// buffers sized on first use for the largest T·E seen, reused across layers and steps.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace upcycle::backend::cuda_detail {

struct RoutingState {
  explicit RoutingState(cudaStream_t stream);
  ~RoutingState();
  RoutingState(const RoutingState&) = delete;
  RoutingState& operator=(const RoutingState&) = delete;

  cudaStream_t stream = nullptr;
};

}  // namespace upcycle::backend::cuda_detail
