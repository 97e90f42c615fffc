// The cuda backend's construction, memory and stream (cuda_backend.h), and the module's entry points
// (cuda_factory.h), which backend/cuda_module.cpp finds with dlsym. One non-blocking stream per backend: every op and copy is queued on it, so ops run
// in issue order; upload and download wait for that stream (the bytes are in place on return, and a
// download sees every op queued before it). allocate is zero-filled like the host backends' calloc.
// Non-goals: several devices, pinned host staging. Backend buffers use plain cudaMalloc (the engine
// allocates them up front, so it costs nothing per step); only the per-call scratch of a few ops
// (cross_entropy, scatter_add_rows) is stream-ordered (cudaMallocAsync).
#include <cstdio>
#include <new>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_factory.h"
#include "backend/cuda/cuda_gemm_state.h"
#include "backend/cuda/cuda_routing_state.h"
#include "core/error.h"

namespace upcycle::backend {

CudaBackend::CudaBackend(int device) : device_(device) {
  UPCYCLE_CUDA_CHECK(cudaSetDevice(device_));
  // Non-blocking: the stream does not serialise with the legacy default stream that other libraries
  // (or a cudaMemcpy elsewhere) may use; our own ordering comes from queuing everything on stream_.
  UPCYCLE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}

CudaBackend::~CudaBackend() {
  // Queued ops may still read the GEMM/routing scratch: wait before their owners free it. A failure
  // here cannot be reported from a destructor (a sticky device error already surfaced elsewhere).
  cudaSetDevice(device_);
  cudaStreamSynchronize(stream_);
  gemm_.reset();
  routing_.reset();
  cudaStreamDestroy(stream_);
}

void* CudaBackend::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* ptr = nullptr;
  const cudaError_t status = cudaMalloc(&ptr, bytes);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the (non-sticky) error so later calls do not report it again
    throw std::bad_alloc();
  }
  UPCYCLE_CUDA_CHECK(status);
  // Zero-filled like calloc on the host backends; synchronised so the buffer is ready for any stream
  // and a caller's first upload cannot race the memset.
  UPCYCLE_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, stream_));
  UPCYCLE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return ptr;
}

void CudaBackend::deallocate(void* ptr) noexcept {
  if (ptr == nullptr) return;
  // cudaFree waits for the device to finish work that might use the memory; an error cannot be
  // thrown from a noexcept path and would resurface at the next checked call.
  cudaFree(ptr);
}

void CudaBackend::fill_zero(void* ptr, size_t bytes) {
  if (bytes == 0) return;
  UPCYCLE_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, stream_));
}

void CudaBackend::upload(void* dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  // Pageable host memory: the copy is staged by the driver; syncing makes the call synchronous as the
  // contract says (the host buffer may be reused or freed as soon as upload returns).
  UPCYCLE_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
  UPCYCLE_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::download(void* host_dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  UPCYCLE_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  UPCYCLE_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  UPCYCLE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::synchronize() { UPCYCLE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

}  // namespace upcycle::backend

// --- the module's entry points (cuda_factory.h) ---

int upcycle_cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver / no device: clear the error, report none
    return 0;
  }
  return count;
}

void upcycle_cuda_device_name(char* out, size_t size) {
  if (size == 0) return;
  out[0] = '\0';
  if (upcycle_cuda_device_count() == 0) return;
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  std::snprintf(out, size, "%s", prop.name);
}

upcycle::backend::Backend* upcycle_cuda_make_backend() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw upcycle::Error(std::string("no CUDA GPU is visible to this process (cudaGetDeviceCount: ") +
                         cudaGetErrorString(status) + ")");
  }
  if (count == 0) throw upcycle::Error("no CUDA GPU is visible to this process (cudaGetDeviceCount: 0 devices)");
  return new upcycle::backend::CudaBackend(0);
}

