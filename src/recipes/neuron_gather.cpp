// Neuron gathers in the stored dtype, and parallel whole-matrix conversions (see neuron_gather.h).
#include "recipes/neuron_gather.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace upcycle::recipes {
namespace {

// Below this many elements a parallel region costs more than it saves.
constexpr size_t kParallelElements = size_t{1} << 18;
constexpr size_t kBlock = size_t{1} << 16;  // elements per parallel conversion block

// to[j] = row[neurons[j]] for elements of Size bytes.
template <size_t Size>
void gather_elements(const std::byte* row, const std::vector<int64_t>& neurons, std::byte* to) {
  for (size_t j = 0; j < neurons.size(); ++j) std::memcpy(to + j * Size, row + size_t(neurons[j]) * Size, Size);
}

// Converts n elements block by block, in parallel when large; elementwise, so thread-count independent.
void convert_parallel(const std::byte* in, DType from, std::byte* out, DType to, size_t n) {
  const size_t in_size = dtype_size(from), out_size = dtype_size(to), blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (int64_t b = 0; b < int64_t(blocks); ++b) {
    const size_t first = size_t(b) * kBlock, count = std::min(kBlock, n - first);
    convert_floats(in + first * in_size, from, out + first * out_size, to, count);
  }
}

}  // namespace

// What bf16/f16 → fp32 → bf16/f16 does to a value: NaNs gain the quiet bit, everything else is exact.
void quiet_nans(std::byte* data, size_t n, DType dtype) {
  if (dtype != DType::kBF16 && dtype != DType::kF16) return;
  const uint16_t inf = dtype == DType::kBF16 ? 0x7f80u : 0x7c00u, quiet = dtype == DType::kBF16 ? 0x40u : 0x200u;
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    uint16_t x;
    std::memcpy(&x, data + 2 * i, 2);
    x = uint16_t((x & 0x7fffu) > inf ? x | quiet : x);
    std::memcpy(data + 2 * i, &x, 2);
  }
}

void gather_elements(const std::byte* row, const std::vector<int64_t>& neurons, std::byte* to, size_t size) {
  switch (size) {
    case 2: return gather_elements<2>(row, neurons, to);
    case 4: return gather_elements<4>(row, neurons, to);
    case 8: return gather_elements<8>(row, neurons, to);
    default: UPCYCLE_CHECK(false, "gather_neurons: unsupported element size");
  }
}

// Unscaled in the stored dtype: the elements themselves (fp32 → fp32 is exact, NaN payloads included).
bool copies_verbatim(DType stored, DType out, double scale) {
  return scale == 1.0 && out == stored && (out == DType::kBF16 || out == DType::kF16 || out == DType::kF32);
}

std::vector<std::byte> gather_neurons(const RawMatrix& dense, FfnMatrix m, const std::vector<int64_t>& neurons,
                                      double scale, DType out, std::vector<std::byte> reuse) {
  const bool down = m == FfnMatrix::kDown;  // dense down is [D, F]: the neurons are columns
  const int64_t width = int64_t(neurons.size());
  const int64_t out_rows = down ? dense.rows : width, out_cols = down ? width : dense.cols;
  for (int64_t j : neurons)
    UPCYCLE_CHECK(j >= 0 && j < (down ? dense.cols : dense.rows), "gather_neurons: neuron out of range");
  const size_t in_size = dtype_size(dense.dtype), out_size = dtype_size(out), cols = size_t(out_cols);
  std::vector<std::byte> result = std::move(reuse);
  result.resize(size_t(out_rows) * cols * out_size);  // every byte is overwritten below
  const bool verbatim = copies_verbatim(dense.dtype, out, scale);
  const float factor = float(scale);
  std::vector<std::byte> picked(down && !verbatim ? cols * in_size : 0);
  std::vector<float> row(verbatim ? 0 : cols);
  for (int64_t r = 0; r < out_rows; ++r) {
    std::byte* to = result.data() + size_t(r) * cols * out_size;
    const std::byte* from = nullptr;
    if (down) {
      std::byte* into = verbatim ? to : picked.data();
      gather_elements(dense.bytes.data() + size_t(r) * size_t(dense.cols) * in_size, neurons, into, in_size);
      from = into;
    } else {
      from = dense.bytes.data() + size_t(neurons[size_t(r)]) * cols * in_size;
    }
    if (verbatim) {
      if (!down) std::memcpy(to, from, cols * in_size);
      quiet_nans(to, cols, out);
      continue;
    }
    convert_floats(from, dense.dtype, row.data(), DType::kF32, cols);
    if (scale != 1.0)
      for (float& v : row) v *= factor;
    convert_floats(row.data(), DType::kF32, to, out, cols);
  }
  return result;
}

std::vector<float> to_f32(const RawMatrix& dense) {
  std::vector<float> out(size_t(dense.rows) * size_t(dense.cols));
  convert_parallel(dense.bytes.data(), dense.dtype, reinterpret_cast<std::byte*>(out.data()), DType::kF32, out.size());
  return out;
}

std::vector<std::byte> encode_f32(const std::vector<float>& values, DType out, std::vector<std::byte> reuse) {
  std::vector<std::byte> bytes = std::move(reuse);
  bytes.resize(values.size() * dtype_size(out));
  convert_parallel(reinterpret_cast<const std::byte*>(values.data()), DType::kF32, bytes.data(), out, values.size());
  return bytes;
}

}  // namespace upcycle::recipes
