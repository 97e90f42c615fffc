// Counter-based random numbers: value i of a stream is a pure function of (seed, stream name, i).
// Initialisation draws element i of a tensor as normal(i) of the stream named after the tensor, so
// results never depend on thread count, chunking or the order tensors are produced in.
// Not cryptographic; SplitMix64-style mixing is ample for weight initialisation and sampling.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace upcycle {

class CounterRng {
 public:
  CounterRng(uint64_t seed, std::string_view stream);

  uint64_t bits(uint64_t counter) const;
  double uniform(uint64_t counter) const;  // in [0, 1)
  // Standard normal via Box-Muller; counters 2j and 2j+1 share one draw (cos and sin halves).
  float normal(uint64_t counter) const;
  // normal(2·pair) and normal(2·pair + 1) from one Box–Muller draw (what normal() computes for either).
  void normal_pair(uint64_t pair, float out[2]) const;
  // out[j] = normal(first + j) for j < n, one draw per pair of counters.
  void fill_standard_normal(float* out, uint64_t first, size_t n) const;
  // out[j] = mean + std * normal(first + j) for j < n.
  void fill_normal(float* out, uint64_t first, size_t n, float mean, float std) const;
  // fill_standard_normal split over the OpenMP threads when n is large: the same values.
  void fill_standard_normal_parallel(float* out, uint64_t first, size_t n) const;

 private:
  uint64_t key_;
};

uint64_t mix64(uint64_t x);                  // SplitMix64 finaliser
uint64_t hash_name(std::string_view name);   // FNV-1a 64, then mixed

}  // namespace upcycle
