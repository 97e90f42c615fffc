// State of the cuda backend's matrix products (owned by cuda_linear.cu): the cuBLASLt handle, its
// workspace, device scratch for the bf16-rounded copies of GEMM operands and for the column-sum
// partials (linear's db, rmsnorm's dw), and the algorithm chosen for each GEMM shape. Scratch grows on
// demand and is reused across calls; growing synchronises the stream before freeing the old buffer, so
// queued work that reads it stays valid.
// Invariant: one algorithm per shape key for the backend's lifetime (until the cache is cleared, which
// re-asks the same deterministic heuristic), so a product's bits never change between steps.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>

namespace upcycle::backend::cuda_detail {

// The three bf16 copies one op can need at once: its two products share dy (linear_backward).
enum class Bf16Slot { kInput, kWeight, kGradOutput };
inline constexpr int kBf16Slots = 3;

// Everything the heuristic's answer depends on: data type, transposes, sizes, leading dimensions and
// the pointers' alignments (A, B, C).
using GemmKey = std::array<int64_t, 12>;

struct GemmState {
  explicit GemmState(cudaStream_t stream);
  ~GemmState();
  GemmState(const GemmState&) = delete;
  GemmState& operator=(const GemmState&) = delete;

  // Device scratch of at least `count` elements (contents undefined).
  uint16_t* bf16_scratch(Bf16Slot slot, size_t count);
  double* column_partials(size_t count);

  cudaStream_t stream = nullptr;
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;

  std::array<uint16_t*, kBf16Slots> bf16 = {};
  std::array<size_t, kBf16Slots> bf16_capacity = {};
  double* partials = nullptr;
  size_t partials_capacity = 0;
  std::map<GemmKey, cublasLtMatmulAlgo_t> algos;
};

}  // namespace upcycle::backend::cuda_detail
