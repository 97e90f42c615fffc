// Counter-based RNG (see rng.h for the contract).
#include "core/rng.h"

#include <array>
#include <cmath>
#include <numbers>

#include "core/normal_v2.h"

namespace upcycle {

uint64_t hash_name(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return mix64(h);
}

CounterRng::CounterRng(uint64_t seed, std::string_view stream, RngVersion normals)
    : key_(mix64(mix64(seed) ^ hash_name(stream))), version_(normals) {}

uint64_t CounterRng::bits(uint64_t counter) const { return mix64(key_ ^ mix64(counter)); }

double CounterRng::uniform(uint64_t counter) const { return static_cast<double>(bits(counter) >> 11) * 0x1.0p-53; }

namespace {
// Both v1 Box-Muller outputs of the pair draw `pair`.
inline void box_muller_v1(uint64_t key, uint64_t pair, double& z0, double& z1) {
  uint64_t b = mix64(key ^ mix64(pair));
  double u1 = (static_cast<double>(b >> 32) + 0.5) * 0x1.0p-32;  // (0,1): log is finite
  double u2 = static_cast<double>(b & 0xffffffffu) * 0x1.0p-32;
  double r = std::sqrt(-2.0 * std::log(u1));
  double angle = 2.0 * std::numbers::pi * u2;
  z0 = r * std::cos(angle);
  z1 = r * std::sin(angle);
}
}  // namespace

float CounterRng::normal(uint64_t counter) const {
  float z[2];
  normal_pair(counter >> 1, z);
  return z[counter & 1];
}

void CounterRng::normal_pair(uint64_t pair, float out[2]) const {
  if (version_ == RngVersion::kV2) return normal_pairs_v2(key_, &pair, 1, out);
  double z0, z1;
  box_muller_v1(key_, pair, z0, z1);
  out[0] = static_cast<float>(z0);
  out[1] = static_cast<float>(z1);
}

void CounterRng::normal_pairs(const uint64_t* pairs, size_t n, float* out) const {
  if (version_ == RngVersion::kV2) return normal_pairs_v2(key_, pairs, n, out);
  for (size_t k = 0; k < n; ++k) normal_pair(pairs[k], out + 2 * k);
}

void CounterRng::fill_standard_normal(float* out, uint64_t first, size_t n) const {
  size_t j = 0;
  if (n > 0 && (first & 1)) out[j++] = normal(first);
  if (version_ == RngVersion::kV2) {
    // Whole pairs in blocks, straight into out (an even number of values from an even counter).
    std::array<uint64_t, 256> pairs;
    while (j + 1 < n) {
      const size_t count = std::min(pairs.size(), (n - j) / 2);
      for (size_t k = 0; k < count; ++k) pairs[k] = ((first + j) >> 1) + k;
      normal_pairs_v2(key_, pairs.data(), count, out + j);
      j += 2 * count;
    }
  }
  for (; j + 1 < n; j += 2) normal_pair((first + j) >> 1, out + j);
  if (j < n) out[j] = normal(first + j);
}

void CounterRng::fill_normal(float* out, uint64_t first, size_t n, float mean, float std) const {
  fill_standard_normal(out, first, n);
  for (size_t j = 0; j < n; ++j) out[j] = mean + std * out[j];
}

}  // namespace upcycle
