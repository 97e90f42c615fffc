// The MoE data path's row ops on the GPU: softmax_rows (+ backward), gather_rows, scatter_add_rows (+
// backward), with the cpu backend's arithmetic (src/backend/cpu/moe_ops.cpp: fp32 values, the sums of a
// row's softmax denominator and of a dot product in double) and the ref backend's semantics.
// Determinism without float atomics:
//   - softmax rows and the dweights dots: one warp per row, lanes stride the row and meet in a butterfly;
//   - scatter_add_rows: a destination row may collect several assignments, which must be added in
//     increasing assignment index. The assignment indices are stably sorted by destination row (CUB's
//     radix sort, stable by construction, on scratch from the stream-ordered allocator), then one block
//     per run of equal rows walks the run in order — each y element has exactly one writer;
//   - everything else: one writer per output element.
// Row indices are device data, so the host cannot check them as ref/cpu do (op_checks.h's check_rows):
// an index outside [0, T) is skipped here (no out-of-bounds access) rather than reported.
#include <cub/device/device_radix_sort.cuh>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace upcycle::backend {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;
constexpr int64_t kMaxBlocks = 1 << 16;  // grid-stride loops cover the rest

// Blocks for a grid-stride loop over n items of `per_block` each (n > 0). Same rule as
// cuda_kernels_common.cuh's grid_for; kept here until the lead folds them together.
unsigned blocks_for(int64_t n, int64_t per_block = kThreads) {
  return unsigned(std::min<int64_t>((n + per_block - 1) / per_block, kMaxBlocks));
}

__device__ inline int64_t global_thread() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline int64_t global_threads() { return int64_t(gridDim.x) * blockDim.x; }

// Butterfly reductions over a full warp (every lane ends with the same bits).
template <typename T>
__device__ T moe_warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ inline float moe_warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = other > v ? other : v;  // std::max's rule, as the cpu loop
  }
  return v;
}

// Warp-per-row kernels: warp w of the grid takes rows w, w + warps, …
__device__ inline int64_t global_warp() { return global_thread() >> 5; }
__device__ inline int64_t global_warps() { return global_threads() >> 5; }

// probs = exp(l − max) · float(1 / Σ exp(l − max)), the sum in double.
__global__ void softmax_rows_kernel(float* probs, const float* logits, int64_t T, int64_t E) {
  const int lane = int(threadIdx.x) & 31;
  for (int64_t t = global_warp(); t < T; t += global_warps()) {
    const float* l_E = logits + t * E;
    float* p_E = probs + t * E;
    float max_logit = -INFINITY;
    for (int64_t e = lane; e < E; e += 32) max_logit = l_E[e] > max_logit ? l_E[e] : max_logit;
    max_logit = moe_warp_max(max_logit);
    double denom = 0.0;
    for (int64_t e = lane; e < E; e += 32) denom += double(expf(l_E[e] - max_logit));
    const float inv = float(1.0 / moe_warp_sum(denom));
    for (int64_t e = lane; e < E; e += 32) p_E[e] = expf(l_E[e] - max_logit) * inv;
  }
}

// dlogits += p ⊙ (dp − float(Σ dp⊙p)), the dot in double.
__global__ void softmax_rows_backward_kernel(float* dlogits, const float* dprobs, const float* probs, int64_t T,
                                             int64_t E) {
  const int lane = int(threadIdx.x) & 31;
  for (int64_t t = global_warp(); t < T; t += global_warps()) {
    const float* p_E = probs + t * E;
    const float* dp_E = dprobs + t * E;
    double dot = 0.0;
    for (int64_t e = lane; e < E; e += 32) dot += double(dp_E[e]) * p_E[e];
    const float dot_f = float(moe_warp_sum(dot));
    for (int64_t e = lane; e < E; e += 32) dlogits[t * E + e] += p_E[e] * (dp_E[e] - dot_f);
  }
}

__device__ inline bool row_in_range(int32_t row, int64_t T) { return row >= 0 && row < T; }

__global__ void gather_rows_kernel(float* out, const float* x, const int32_t* rows, int64_t A, int64_t T, int64_t D) {
  for (int64_t e = global_thread(); e < A * D; e += global_threads()) {
    const int64_t a = e / D, d = e % D;
    const int32_t row = rows[a];
    if (row_in_range(row, T)) out[e] = x[int64_t(row) * D + d];
  }
}

__global__ void iota_kernel(uint32_t* out, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += global_threads()) out[i] = uint32_t(i);
}

// sorted_rows/sorted_a: the assignments ordered by destination row, increasing a within a row. Block p
// handles position p if it starts a run of equal rows: y[row, :] += Σ_run weights[a]·x[a, :] in run
// order, each thread owning columns d, d + blockDim, …
__global__ void scatter_add_runs_kernel(float* y, const float* x, const uint32_t* sorted_rows,
                                        const uint32_t* sorted_a, const float* weights, int64_t A, int64_t T,
                                        int64_t D) {
  for (int64_t p = blockIdx.x; p < A; p += gridDim.x) {
    const uint32_t row = sorted_rows[p];
    if ((p > 0 && sorted_rows[p - 1] == row) || int64_t(row) >= T) continue;  // block-uniform
    float* y_D = y + int64_t(row) * D;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
      float acc = y_D[d];
      for (int64_t q = p; q < A && sorted_rows[q] == row; ++q) {
        const uint32_t a = sorted_a[q];
        acc += (weights ? weights[a] : 1.0f) * x[int64_t(a) * D + d];
      }
      y_D[d] = acc;
    }
  }
}

// dx[a, :] += weights[a]·dy[rows[a], :].
__global__ void scatter_add_rows_dx_kernel(float* dx, const float* dy, const int32_t* rows, const float* weights,
                                           int64_t A, int64_t T, int64_t D) {
  for (int64_t e = global_thread(); e < A * D; e += global_threads()) {
    const int64_t a = e / D, d = e % D;
    const int32_t row = rows[a];
    if (row_in_range(row, T)) dx[e] += (weights ? weights[a] : 1.0f) * dy[int64_t(row) * D + d];
  }
}

// dweights[a] += float(Σ_d dy[rows[a], d]·x[a, d]), the dot in double, one warp per assignment.
__global__ void scatter_add_rows_dweights_kernel(float* dweights, const float* dy, const float* x,
                                                 const int32_t* rows, int64_t A, int64_t T, int64_t D) {
  const int lane = int(threadIdx.x) & 31;
  for (int64_t a = global_warp(); a < A; a += global_warps()) {
    const int32_t row = rows[a];
    if (!row_in_range(row, T)) continue;  // warp-uniform
    const float* dy_D = dy + int64_t(row) * D;
    double dot = 0.0;
    for (int64_t d = lane; d < D; d += 32) dot += double(dy_D[d]) * x[a * D + d];
    dot = moe_warp_sum(dot);
    if (lane == 0) dweights[a] += float(dot);
  }
}

// Bytes rounded up so the next scratch array starts aligned for any type CUB uses.
size_t aligned_bytes(size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace

void CudaBackend::softmax_rows(float* probs, const float* logits, int64_t T, int64_t E) {
  if (T == 0 || E == 0) return;
  softmax_rows_kernel<<<blocks_for(T, kWarpsPerBlock), kThreads, 0, stream_>>>(probs, logits, T, E);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::softmax_rows_backward(float* dlogits, const float* dprobs, const float* probs, int64_t T,
                                        int64_t E) {
  if (T == 0 || E == 0) return;
  softmax_rows_backward_kernel<<<blocks_for(T, kWarpsPerBlock), kThreads, 0, stream_>>>(dlogits, dprobs, probs, T, E);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::gather_rows(float* out, const float* x, const int32_t* rows, int64_t A, int64_t T, int64_t D) {
  if (A == 0 || D == 0) return;
  gather_rows_kernel<<<blocks_for(A * D), kThreads, 0, stream_>>>(out, x, rows, A, T, D);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::scatter_add_rows(float* y, const float* x, const int32_t* rows, const float* weights, int64_t A,
                                   int64_t T, int64_t D) {
  if (A == 0 || D == 0) return;
  // Row indices are < T ≤ 2³¹ and ≥ 0 when valid, so as uint32 keys they sort in the same order; an
  // invalid (negative) one sorts last and is skipped. All 32 bits are sorted so that runs of equal
  // keys are contiguous whatever the keys are.
  const uint32_t* keys_in = reinterpret_cast<const uint32_t*>(rows);
  UPCYCLE_CHECK(A <= INT32_MAX, "scatter_add_rows: more than 2^31 - 1 assignments");
  const int num_items = int(A);
  size_t sort_bytes = 0;
  UPCYCLE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, keys_in, static_cast<uint32_t*>(nullptr),
                                                     static_cast<const uint32_t*>(nullptr),
                                                     static_cast<uint32_t*>(nullptr), num_items, 0, 32, stream_));
  const size_t array_bytes = aligned_bytes(sizeof(uint32_t) * size_t(A));
  void* scratch = nullptr;
  UPCYCLE_CUDA_CHECK(cudaMallocAsync(&scratch, 3 * array_bytes + aligned_bytes(sort_bytes), stream_));
  char* base = static_cast<char*>(scratch);
  auto* sorted_rows = reinterpret_cast<uint32_t*>(base);
  auto* a_in = reinterpret_cast<uint32_t*>(base + array_bytes);
  auto* sorted_a = reinterpret_cast<uint32_t*>(base + 2 * array_bytes);
  void* sort_scratch = base + 3 * array_bytes;

  iota_kernel<<<blocks_for(A), kThreads, 0, stream_>>>(a_in, A);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  UPCYCLE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sort_scratch, sort_bytes, keys_in, sorted_rows, a_in, sorted_a,
                                                     num_items, 0, 32, stream_));
  scatter_add_runs_kernel<<<unsigned(std::min<int64_t>(A, kMaxBlocks)), kThreads, 0, stream_>>>(
      y, x, sorted_rows, sorted_a, weights, A, T, D);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  UPCYCLE_CUDA_CHECK(cudaFreeAsync(scratch, stream_));  // stream-ordered: freed after the kernels above
}

void CudaBackend::scatter_add_rows_backward(float* dx, float* dweights, const float* dy, const float* x,
                                            const int32_t* rows, const float* weights, int64_t A, int64_t T,
                                            int64_t D) {
  if (A == 0) return;
  if (dx && D > 0) {
    scatter_add_rows_dx_kernel<<<blocks_for(A * D), kThreads, 0, stream_>>>(dx, dy, rows, weights, A, T, D);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
  if (dweights) {
    scatter_add_rows_dweights_kernel<<<blocks_for(A, kWarpsPerBlock), kThreads, 0, stream_>>>(dweights, dy, x, rows,
                                                                                             A, T, D);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace upcycle::backend
