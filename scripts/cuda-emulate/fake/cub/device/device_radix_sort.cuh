// scripts/cuda-emulate: CUB's DeviceRadixSort (SortPairs, SortKeys) as a host stable sort on the key bits
// [begin_bit, end_bit) (the properties cuda_moe_ops.cu and cuda_moe_routing.cu rely on: equal keys keep
// their input order, bits outside the range are ignored).
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

#include "cuda_runtime.h"

namespace cub {
struct DeviceRadixSort {
  template <typename Key>
  static Key sort_bits(Key key, int begin_bit, int end_bit) {
    const int width = end_bit - begin_bit;
    const Key shifted = Key(key >> begin_bit);
    return width >= int(8 * sizeof(Key)) ? shifted : Key(shifted & ((Key(1) << width) - 1));
  }
  template <typename Key, typename Value>
  static cudaError_t SortPairs(void* scratch, size_t& scratch_bytes, const Key* keys_in, Key* keys_out,
                               const Value* values_in, Value* values_out, int n, int begin_bit, int end_bit,
                               cudaStream_t) {
    if (!scratch) {
      scratch_bytes = 64;
      return cudaSuccess;
    }
    std::vector<int> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return sort_bits(keys_in[a], begin_bit, end_bit) < sort_bits(keys_in[b], begin_bit, end_bit);
    });
    std::vector<Key> keys(static_cast<size_t>(n));
    std::vector<Value> values(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      keys[size_t(i)] = keys_in[order[size_t(i)]];
      values[size_t(i)] = values_in[order[size_t(i)]];
    }
    std::copy(keys.begin(), keys.end(), keys_out);
    std::copy(values.begin(), values.end(), values_out);
    return cudaSuccess;
  }
  template <typename Key>
  static cudaError_t SortKeys(void* scratch, size_t& scratch_bytes, const Key* keys_in, Key* keys_out, int n,
                              int begin_bit, int end_bit, cudaStream_t) {
    if (!scratch) {
      scratch_bytes = 64;
      return cudaSuccess;
    }
    std::vector<Key> keys(keys_in, keys_in + n);
    std::stable_sort(keys.begin(), keys.end(), [&](Key a, Key b) {
      return sort_bits(a, begin_bit, end_bit) < sort_bits(b, begin_bit, end_bit);
    });
    std::copy(keys.begin(), keys.end(), keys_out);
    return cudaSuccess;
  }
};
}  // namespace cub
