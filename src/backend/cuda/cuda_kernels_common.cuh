// Device helpers shared by the cuda backend's op files: launch sizing for grid-stride loops, block
// reductions in a fixed tree order (so a sum is bitwise the same run to run for a given block size),
// fp32 → bf16 rounding bit for bit equal to core/dtype.h's f32_to_bf16 (round to nearest even, NaN
// kept as a quiet NaN, subnormals rounded, never flushed) with a launcher that rounds n floats, and a
// two-pass column sum (out[c] += Σ_r term(r, c) in double; no atomics, fixed order for given rows).
// Invariants: block reductions need blockDim.x a multiple of 32 and at most 1024, and every thread of
// the block must call them (they contain __syncthreads). Launchers do nothing for n == 0 (a grid of
// zero blocks is a launch error). The kernels assume IEEE expf/log/sqrt and kept subnormals: build
// without --use_fast_math (nvcc exposes no macro to check that here). Header-only; kernels are
// templates so each .cu that includes this gets its own copy, without duplicate-symbol or unused warnings.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "backend/cuda/cuda_check.h"

namespace upcycle::backend::cuda_detail {

constexpr int kThreadsPerBlock = 256;          // elementwise kernels
constexpr int64_t kMaxGridBlocks = 1 << 16;    // grid-stride loops cover the rest

// Blocks for a grid-stride loop over n elements (n > 0).
inline unsigned grid_for(int64_t n, int threads = kThreadsPerBlock) {
  return unsigned(std::min<int64_t>((n + threads - 1) / threads, kMaxGridBlocks));
}

// The index of this thread in a grid-stride loop and the stride, as 64-bit values (n can pass 2³¹).
__device__ inline int64_t grid_thread_index() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

// Sum of one double per thread over a block of kBlock threads (a power of two) in a fixed pairwise tree,
// every addition rounded to nearest (__dadd_rn: never contracted into an FMA); every thread gets the
// result. shared: kBlock doubles. The order depends on kBlock only, so the sum is the same on every run
// and every GPU.
template <int kBlock>
__device__ double block_tree_sum(double v, double* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half >>= 1) {
    if (int(threadIdx.x) < half) shared[threadIdx.x] = __dadd_rn(shared[threadIdx.x], shared[threadIdx.x + half]);
    __syncthreads();
  }
  const double total = shared[0];
  __syncthreads();
  return total;
}

// core/dtype.h's f32_to_bf16: the same integer arithmetic on the same bits (host too, for tests).
__host__ __device__ inline uint16_t f32_to_bf16_bits(float value) {
  uint32_t x;
  memcpy(&x, &value, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);  // round to nearest, ties to even
  return uint16_t(x >> 16);
}
__device__ inline float bf16_bits_to_f32(uint16_t bits) { return __uint_as_float(uint32_t(bits) << 16); }
// value rounded to the nearest bf16 and widened back to fp32.
__device__ inline float round_to_bf16(float value) { return bf16_bits_to_f32(f32_to_bf16_bits(value)); }

struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {  // std::max's comparison, as the host loops (a NaN input makes their losses NaN anyway)
  template <typename T>
  __device__ T operator()(T a, T b) const { return b > a ? b : a; }
};

// Butterfly over the 32 lanes of a full warp, in a fixed order; block_reduce reads lane 0's result.
template <typename T, typename Op>
__device__ T warp_reduce(T v, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Reduces one value per thread over the whole block and returns the result to every thread. The order
// is fixed by blockDim.x: lanes in a butterfly, then the warps' results in a butterfly in warp 0.
// `identity` fills the lanes of warp 0 beyond the number of warps. scratch: 32 elements of shared memory.
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T identity, T* scratch) {
  const int lane = int(threadIdx.x) & 31;
  const int warp = int(threadIdx.x) >> 5;
  const int warps = int(blockDim.x) >> 5;
  v = warp_reduce(v, op);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = warp_reduce(lane < warps ? scratch[lane] : identity, op);
    if (lane == 0) scratch[0] = v;
  }
  __syncthreads();
  const T result = scratch[0];
  __syncthreads();  // scratch may be reused by the caller's next reduction
  return result;
}

template <typename T>
__device__ T block_sum(T v, T* scratch) {
  return block_reduce(v, SumOp{}, T(0), scratch);
}
__device__ inline float block_max(float v, float* scratch) {
  return block_reduce(v, MaxOp{}, -__int_as_float(0x7f800000), scratch);  // identity -inf
}

template <typename Unused = void>
__global__ void round_to_bf16_kernel(uint16_t* out, const float* in, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_stride()) out[i] = f32_to_bf16_bits(in[i]);
}

// out[i] = bf16 bits of in[i] for i < n, queued on `stream`.
inline void launch_round_to_bf16(uint16_t* out, const float* in, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  round_to_bf16_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(out, in, n);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

// --- Column sums: out[c] += float(Σ_r term(r, c)), the sum in double (as the cpu backend's
// column_sum.h). Pass 1: block (32 columns × 8 row lanes) per (column block, chunk of rows); each lane
// walks its rows in order, the 8 lanes are added in order into partial[chunk, c]. Pass 2: one thread
// per column adds the chunks in order. The chunking depends on `rows` only, so results are bitwise
// stable run to run.
constexpr int64_t kColumnChunkRows = 128;
constexpr int64_t kMaxColumnChunks = 1024;
constexpr int kColumnLanes = 8;

inline int64_t column_sum_chunks(int64_t rows) {
  return std::min<int64_t>((rows + kColumnChunkRows - 1) / kColumnChunkRows, kMaxColumnChunks);
}

template <typename Term>
__global__ void column_partial_sums_kernel(double* partial, int64_t rows, int64_t cols, int64_t rows_per_chunk,
                                           Term term) {
  __shared__ double lanes[kColumnLanes][32];
  const int64_t c = int64_t(blockIdx.x) * 32 + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * rows_per_chunk, r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  double acc = 0.0;
  if (c < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColumnLanes) acc += term(r, c);
  lanes[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    double sum = lanes[0][threadIdx.x];
    for (int lane = 1; lane < kColumnLanes; ++lane) sum += lanes[lane][threadIdx.x];
    partial[chunk * cols + c] = sum;
  }
}

template <typename Unused = void>
__global__ void column_finish_kernel(float* out, const double* partial, int64_t chunks, int64_t cols) {
  for (int64_t c = grid_thread_index(); c < cols; c += grid_stride()) {
    double sum = 0.0;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += partial[chunk * cols + c];
    out[c] += float(sum);
  }
}

// partial: device scratch of column_sum_chunks(rows) · cols doubles. Term: a device functor
// double(int64_t r, int64_t c), copied by value into the kernel.
template <typename Term>
void launch_column_sums(float* out, double* partial, int64_t rows, int64_t cols, Term term, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  const int64_t chunks = column_sum_chunks(rows);
  const int64_t rows_per_chunk = (rows + chunks - 1) / chunks;
  const dim3 grid(unsigned((cols + 31) / 32), unsigned(chunks));
  column_partial_sums_kernel<<<grid, dim3(32, kColumnLanes), 0, stream>>>(partial, rows, cols, rows_per_chunk, term);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  column_finish_kernel<<<grid_for(cols), kThreadsPerBlock, 0, stream>>>(out, partial, chunks, cols);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

}  // namespace upcycle::backend::cuda_detail
