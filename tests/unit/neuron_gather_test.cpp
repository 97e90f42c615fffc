// gather_neurons against the fp32 route it replaces, element by element with the scalar conversions:
// convert the dense matrix to fp32, take the neurons' rows (gate/up) or columns (down), multiply by
// float(scale) unless it is 1, convert to the output dtype. The dense matrices hold every kind of value
// the round trip treats specially — signalling and quiet NaNs, infinities, subnormals, ±0 — next to
// ordinary random bits, so a verbatim copy that forgot to quieten NaNs, or a scaled path that rounded
// differently, fails. A reused buffer (WriteBehind::spare()) full of other bytes, larger or smaller,
// gives the same result.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "recipes/neuron_gather.h"

namespace upcycle::recipes {
namespace {

RawMatrix random_matrix(DType dtype, int64_t rows, int64_t cols, uint32_t seed) {
  RawMatrix m{dtype, rows, cols, std::vector<std::byte>(size_t(rows * cols) * dtype_size(dtype))};
  std::mt19937 gen(seed);
  const size_t n = size_t(rows * cols);
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits = gen();
    if (dtype == DType::kF32) {
      const uint32_t special[] = {0x7f800001u, 0xffc00005u, 0x7f800000u, 0x00000003u, 0x80000000u};
      if (i % 7 == 0) bits = special[(i / 7) % 5];
      std::memcpy(m.bytes.data() + 4 * i, &bits, 4);
    } else {
      uint16_t h = uint16_t(bits);
      const bool bf = dtype == DType::kBF16;
      const uint16_t special[] = {uint16_t(bf ? 0x7f81u : 0x7c01u), uint16_t(bf ? 0xffa3u : 0xfd17u),
                                  uint16_t(bf ? 0x7f80u : 0x7c00u), 0x0003u, 0x8000u};
      if (i % 7 == 0) h = special[(i / 7) % 5];
      std::memcpy(m.bytes.data() + 2 * i, &h, 2);
    }
  }
  return m;
}

std::vector<std::byte> fp32_route(const RawMatrix& dense, FfnMatrix m, const std::vector<int64_t>& neurons,
                                  double scale, DType out) {
  std::vector<float> all(size_t(dense.rows * dense.cols));
  convert_floats(dense.bytes.data(), dense.dtype, all.data(), DType::kF32, all.size());
  std::vector<float> picked;
  if (m == FfnMatrix::kDown) {
    for (int64_t d = 0; d < dense.rows; ++d)
      for (int64_t j : neurons) picked.push_back(all[size_t(d * dense.cols + j)]);
  } else {
    for (int64_t j : neurons)
      for (int64_t d = 0; d < dense.cols; ++d) picked.push_back(all[size_t(j * dense.cols + d)]);
  }
  if (scale != 1.0)
    for (float& v : picked) v *= float(scale);
  std::vector<std::byte> bytes(picked.size() * dtype_size(out));
  for (size_t i = 0; i < picked.size(); ++i) {  // one value at a time through the scalar functions
    if (out == DType::kF32) std::memcpy(bytes.data() + 4 * i, &picked[i], 4);
    const uint16_t h = out == DType::kBF16 ? f32_to_bf16(picked[i]) : out == DType::kF16 ? f32_to_f16(picked[i]) : 0;
    if (out != DType::kF32) std::memcpy(bytes.data() + 2 * i, &h, 2);
  }
  return bytes;
}

TEST(NeuronGather, EqualsTheFp32RouteBitForBit) {
  const DType dtypes[] = {DType::kBF16, DType::kF16, DType::kF32};
  for (DType from : dtypes)
      for (DType to : dtypes)
        for (FfnMatrix m : {FfnMatrix::kGate, FfnMatrix::kDown})
          for (double scale : {1.0, 1.2599210498948732})
            for (bool big : {false, true}) {
              const int64_t F = big ? 1536 : 50, D = big ? 384 : 12;
              const RawMatrix dense = m == FfnMatrix::kDown ? random_matrix(from, D, F, 7) : random_matrix(from, F, D, 7);
              std::vector<int64_t> neurons;
              for (int64_t j = F - 1; j >= 0; j -= 2) neurons.push_back((j * 37) % F);  // half, shuffled
              const auto want = fp32_route(dense, m, neurons, scale, to);
              const std::string what = std::string(dtype_name(from)) + " -> " + std::string(dtype_name(to)) +
                                       (m == FfnMatrix::kDown ? " down" : " gate") + " scale " + std::to_string(scale) +
                                       (big ? " big" : "");
              EXPECT_EQ(gather_neurons(dense, m, neurons, scale, to), want) << what;
              for (size_t spare_size : {want.size() / 3, want.size() + 10})
                EXPECT_EQ(gather_neurons(dense, m, neurons, scale, to, std::vector<std::byte>(spare_size, std::byte{0x7f})),
                          want) << what << " into a spare buffer of " << spare_size;
            }
}

TEST(NeuronGather, RefusesANeuronOutsideTheMatrix) {
  const RawMatrix dense = random_matrix(DType::kBF16, 4, 3, 1);
  EXPECT_ANY_THROW(gather_neurons(dense, FfnMatrix::kGate, {0, 4}, 1.0, DType::kBF16));
  EXPECT_ANY_THROW(gather_neurons(dense, FfnMatrix::kDown, {3}, 1.0, DType::kBF16));
}

TEST(NeuronGather, ToF32AndEncodeAreTheScalarConversions) {
  const RawMatrix dense = random_matrix(DType::kBF16, 700, 400, 3);  // parallel blocks with a tail
  const std::vector<float> values = to_f32(dense);
  for (size_t i = 0; i < values.size(); i += 97) {
    uint16_t h;
    std::memcpy(&h, dense.bytes.data() + 2 * i, 2);
    EXPECT_EQ(std::bit_cast<uint32_t>(values[i]), std::bit_cast<uint32_t>(bf16_to_f32(h))) << i;
  }
  const std::vector<std::byte> f16 = encode_f32(values, DType::kF16);
  for (size_t i = 0; i < values.size(); i += 97) {
    uint16_t h;
    std::memcpy(&h, f16.data() + 2 * i, 2);
    EXPECT_EQ(h, f32_to_f16(values[i])) << i;
  }
}

}  // namespace
}  // namespace upcycle::recipes
