// scripts/cuda-emulate: the part of the CUDA runtime and device language that cuda_attention.cu and
// cuda_moe_ops.cu use, emulated on the CPU so their kernels run without a GPU. A launch runs its blocks
// one after another; a block runs each of its threads as a std::thread, so __syncthreads is a barrier of
// the block and __shfl_sync a barrier of the warp's 32 threads (every lane must call it, as on a GPU).
// Dynamic shared memory starts as NaN each block, so a read before a write shows in the results.
// Stream-ordered allocation is malloc/free; attribute calls and error queries succeed.
// Not emulated: anything else of CUDA; concurrency between blocks (a race across blocks cannot show).
#pragma once

#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __launch_bounds__(threads)

typedef void* cudaStream_t;
enum cudaError_t { cudaSuccess = 0 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
inline const char* cudaGetErrorName(cudaError_t) { return "cudaSuccess"; }
inline const char* cudaGetErrorString(cudaError_t) { return "no error"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel, cudaFuncAttribute, int) {
  return cudaSuccess;
}
inline cudaError_t cudaMallocAsync(void** ptr, size_t bytes, cudaStream_t) {
  *ptr = std::malloc(bytes);
  std::memset(*ptr, 0xff, bytes);  // garbage, as fresh device memory
  return cudaSuccess;
}
inline cudaError_t cudaFreeAsync(void* ptr, cudaStream_t) {
  std::free(ptr);
  return cudaSuccess;
}

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 gridDim, blockDim;

namespace cuda_emulate {
struct Warp {
  std::barrier<> arrived{32};
  alignas(8) unsigned char slot[32][8];  // one value per lane, up to 8 bytes
};
inline thread_local Warp* warp;
inline std::barrier<>* block_barrier;
inline float* shared_memory;
inline long launches = 0;
}  // namespace cuda_emulate

inline void __syncthreads() { cuda_emulate::block_barrier->arrive_and_wait(); }

template <typename T>
T __shfl_sync(unsigned, T value, int src_lane) {
  static_assert(sizeof(T) <= 8);
  cuda_emulate::Warp& w = *cuda_emulate::warp;
  std::memcpy(w.slot[threadIdx.x & 31], &value, sizeof(T));
  w.arrived.arrive_and_wait();
  T result;
  std::memcpy(&result, w.slot[src_lane & 31], sizeof(T));
  w.arrived.arrive_and_wait();  // nobody overwrites a slot before every lane has read
  return result;
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask) {
  return __shfl_sync(mask, value, int(threadIdx.x & 31) ^ lane_mask);
}

// What `kernel<<<grid, block, shared_bytes, stream>>>(args...)` becomes (to_host.py rewrites launches).
template <typename Kernel, typename... Args>
void emulate_launch(Kernel kernel, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t, const Args&... args) {
  ++cuda_emulate::launches;
  gridDim = grid;
  blockDim = block;
  std::vector<float> shared(shared_bytes / sizeof(float) + 1);
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        std::fill(shared.begin(), shared.end(), std::numeric_limits<float>::quiet_NaN());
        cuda_emulate::shared_memory = shared.data();
        std::barrier<> block_barrier(block.x);
        cuda_emulate::block_barrier = &block_barrier;
        std::vector<cuda_emulate::Warp> warps((block.x + 31) / 32);
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < block.x; ++t) {
          threads.emplace_back([&, t] {
            threadIdx = dim3(t);
            blockIdx = dim3(x, y, z);
            cuda_emulate::warp = &warps[t / 32];
            kernel(args...);
          });
        }
        for (std::thread& th : threads) th.join();
      }
    }
  }
}
