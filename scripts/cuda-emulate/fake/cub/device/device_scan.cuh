// scripts/cuda-emulate: CUB's DeviceScan::ExclusiveSum on the host.
#pragma once

#include "cuda_runtime.h"

namespace cub {
struct DeviceScan {
  template <typename In, typename Out>
  static cudaError_t ExclusiveSum(void* scratch, size_t& scratch_bytes, In in, Out out, int n, cudaStream_t) {
    if (!scratch) {
      scratch_bytes = 64;
      return cudaSuccess;
    }
    long long sum = 0;
    for (int i = 0; i < n; ++i) {
      const long long value = in[i];
      out[i] = sum;
      sum += value;
    }
    return cudaSuccess;
  }
};
}  // namespace cub
