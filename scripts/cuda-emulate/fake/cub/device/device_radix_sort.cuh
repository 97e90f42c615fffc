// scripts/cuda-emulate: CUB's DeviceRadixSort::SortPairs as a host stable sort (the property
// cuda_moe_ops.cu relies on: equal keys keep their input order).
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

#include "cuda_runtime.h"

namespace cub {
struct DeviceRadixSort {
  template <typename Key, typename Value>
  static cudaError_t SortPairs(void* scratch, size_t& scratch_bytes, const Key* keys_in, Key* keys_out,
                               const Value* values_in, Value* values_out, int n, int, int, cudaStream_t) {
    if (!scratch) {
      scratch_bytes = 64;
      return cudaSuccess;
    }
    std::vector<int> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return keys_in[a] < keys_in[b]; });
    for (int i = 0; i < n; ++i) {
      keys_out[i] = keys_in[order[size_t(i)]];
      values_out[i] = values_in[order[size_t(i)]];
    }
    return cudaSuccess;
  }
};
}  // namespace cub
