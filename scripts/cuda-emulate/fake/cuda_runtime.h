// scripts/cuda-emulate: the part of the CUDA runtime and device language that backend/cuda's .cu files
// use, emulated on the CPU so their kernels run without a GPU. A launch runs its blocks one after
// another; a block runs each of its threads (1-D to 3-D blocks, numbered x fastest) as a std::thread, so
// __syncthreads is a barrier of the block and __shfl_sync a barrier of the warp's 32 threads (every lane
// must call it with the full mask, as on a GPU). Dynamic and static (__shared__) shared memory start as
// NaN bytes each block, so a read before a write shows in the results. Device memory is host memory
// (cudaMalloc fills it with garbage bytes, as fresh device memory); copies and memsets run at once;
// streams, attribute calls and synchronisation are no-ops; the _rn intrinsics are plain IEEE operations
// (build with -ffp-contract=off so the host compiler does not fuse them either).
// Not emulated: anything else of CUDA; concurrency between blocks (a race across blocks cannot show).
#pragma once

#include <atomic>
#include <barrier>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __launch_bounds__(threads)
#define __grid_constant__

typedef void* cudaStream_t;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidConfiguration = 9 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
inline const char* cudaGetErrorName(cudaError_t) { return "cudaErrorInvalidConfiguration"; }
inline const char* cudaGetErrorString(cudaError_t) { return "emulated launch configuration error"; }
inline cudaError_t emulated_launch_error = cudaSuccess;
inline cudaError_t cudaGetLastError() { return std::exchange(emulated_launch_error, cudaSuccess); }
template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel, cudaFuncAttribute, int) {
  return cudaSuccess;
}
inline cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  *ptr = std::malloc(bytes ? bytes : 1);
  std::memset(*ptr, 0xff, bytes);  // garbage, as fresh device memory
  return cudaSuccess;
}
template <typename T>
cudaError_t cudaMalloc(T** ptr, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
inline cudaError_t cudaFree(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}
inline cudaError_t cudaMallocAsync(void** ptr, size_t bytes, cudaStream_t) { return cudaMalloc(ptr, bytes); }
inline cudaError_t cudaFreeAsync(void* ptr, cudaStream_t) { return cudaFree(ptr); }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) {
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemset2DAsync(void* ptr, size_t pitch, int value, size_t width, size_t height, cudaStream_t) {
  for (size_t r = 0; r < height; ++r) std::memset(static_cast<char*>(ptr) + r * pitch, value, width);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(dst, src, bytes);
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
inline thread_local int lane;  // the thread's lane: its linear index in the block mod 32
inline std::barrier<>* block_barrier;
inline float* shared_memory;
inline long launches = 0;

// A `__shared__ T name[...]` declaration (to_host.py rewrites it into a call): one T per block,
// keyed by type and source line, NaN bytes at the block's start.
inline std::mutex static_shared_mutex;
inline std::map<std::pair<const std::type_info*, int>, std::vector<unsigned char>> static_shared;
template <typename T, int kLine>
T& block_shared() {
  std::lock_guard<std::mutex> lock(static_shared_mutex);
  std::vector<unsigned char>& bytes = static_shared[{&typeid(T), kLine}];
  if (bytes.empty()) bytes.assign(sizeof(T), 0xff);
  return *reinterpret_cast<T*>(bytes.data());
}
}  // namespace cuda_emulate

inline void __syncthreads() { cuda_emulate::block_barrier->arrive_and_wait(); }

template <typename T>
T __shfl_sync(unsigned mask, T value, int src_lane) {
  static_assert(sizeof(T) <= 8);
  if (mask != 0xffffffffu) {
    std::fprintf(stderr, "cuda-emulate: __shfl_sync with a partial mask\n");
    std::abort();
  }
  cuda_emulate::Warp& w = *cuda_emulate::warp;
  std::memcpy(w.slot[cuda_emulate::lane], &value, sizeof(T));
  w.arrived.arrive_and_wait();
  T result;
  std::memcpy(&result, w.slot[src_lane & 31], sizeof(T));
  w.arrived.arrive_and_wait();  // nobody overwrites a slot before every lane has read
  return result;
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask) {
  return __shfl_sync(mask, value, cuda_emulate::lane ^ lane_mask);
}

// Device intrinsics the kernels use.
inline float __int_as_float(int i) { return std::bit_cast<float>(i); }
inline float __uint_as_float(unsigned i) { return std::bit_cast<float>(i); }
inline unsigned __float_as_uint(float f) { return std::bit_cast<unsigned>(f); }
[[noreturn]] inline void __trap() {
  std::fprintf(stderr, "cuda-emulate: __trap\n");
  std::abort();
}
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }
inline unsigned long long atomicMin(unsigned long long* address, unsigned long long value) {
  std::atomic_ref<unsigned long long> target(*address);
  unsigned long long old = target.load();
  while (value < old && !target.compare_exchange_weak(old, value)) {
  }
  return old;
}
using std::isfinite;

// What `kernel<<<grid, block, shared_bytes, stream>>>(args...)` becomes (to_host.py rewrites launches).
// A configuration the GPU refuses (an empty grid or block, > 1024 threads, grid y or z > 65535) is
// reported by the next cudaGetLastError, as on a GPU.
template <typename Kernel, typename... Args>
void emulate_launch(Kernel kernel, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t, const Args&... args) {
  const unsigned threads = block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0 || threads > 1024 || grid.y > 65535 || grid.z > 65535) {
    emulated_launch_error = cudaErrorInvalidConfiguration;
    return;
  }
  ++cuda_emulate::launches;
  gridDim = grid;
  blockDim = block;
  std::vector<float> shared(shared_bytes / sizeof(float) + 1);
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        std::fill(shared.begin(), shared.end(), std::numeric_limits<float>::quiet_NaN());
        cuda_emulate::shared_memory = shared.data();
        cuda_emulate::static_shared.clear();
        std::barrier<> block_barrier(threads);
        cuda_emulate::block_barrier = &block_barrier;
        std::vector<cuda_emulate::Warp> warps((threads + 31) / 32);
        std::vector<std::thread> workers;
        for (unsigned t = 0; t < threads; ++t) {
          workers.emplace_back([&, t] {
            threadIdx = dim3(t % block.x, t / block.x % block.y, t / (block.x * block.y));
            blockIdx = dim3(x, y, z);
            cuda_emulate::warp = &warps[t / 32];
            cuda_emulate::lane = int(t % 32);
            kernel(args...);
          });
        }
        for (std::thread& worker : workers) worker.join();
      }
    }
  }
}
