// Counter-based random numbers: value i of a stream is a pure function of (seed, stream name, i).
// Initialisation draws element i of a tensor as normal(i) of the stream named after the tensor, so
// results never depend on thread count, chunking or the order tensors are produced in.
// Not cryptographic; SplitMix64-style mixing is ample for weight initialisation and sampling.
// Normals come in two versions of the same bits: v1 (double Box–Muller with libm's log/sincos, the
// default, what every stream except convert's expert weights uses) and v2 (fp32 Box–Muller with own
// polynomials, vectorised, identical on every CPU path: core/normal_v2.h). bits() and uniform() do
// not depend on the version.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace upcycle {

// Recorded in a conversion's config.json (upcycle_recipe.rng_version): never change what a version draws.
enum class RngVersion : int { kV1 = 1, kV2 = 2 };

class CounterRng {
 public:
  CounterRng(uint64_t seed, std::string_view stream, RngVersion normals = RngVersion::kV1);

  uint64_t bits(uint64_t counter) const;  // mix64(key() ^ mix64(counter))
  uint64_t key() const { return key_; }  // the stream key: what a device port of bits() starts from
  double uniform(uint64_t counter) const;  // in [0, 1)
  // Standard normal via Box-Muller; counters 2j and 2j+1 share one draw (cos and sin halves).
  float normal(uint64_t counter) const;
  // normal(2·pair) and normal(2·pair + 1) from one Box–Muller draw (what normal() computes for either).
  void normal_pair(uint64_t pair, float out[2]) const;
  // out[2k], out[2k + 1] = normal_pair(pairs[k]) for k < n (vectorised for v2).
  void normal_pairs(const uint64_t* pairs, size_t n, float* out) const;
  // out[j] = normal(first + j) for j < n, one draw per pair of counters.
  void fill_standard_normal(float* out, uint64_t first, size_t n) const;
  // out[j] = mean + std * normal(first + j) for j < n.
  void fill_normal(float* out, uint64_t first, size_t n, float mean, float std) const;

 private:
  uint64_t key_;
  RngVersion version_;
};

// SplitMix64 finaliser (inline: the v2 kernels vectorise it).
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t hash_name(std::string_view name);   // FNV-1a 64, then mixed

}  // namespace upcycle
