// Error checks for CUDA runtime and cuBLAS(Lt) calls in backend/cuda. A failing call is a user-facing
// condition (no device, out of device memory, a driver too old for the toolkit), so it throws
// upcycle::Error naming the call and CUDA's own message; the CLI prints it on one line and exits 2.
// A kernel launch is checked with UPCYCLE_CUDA_LAUNCH_CHECK() right after the <<<...>>> (launch
// configuration errors surface there; faults inside a kernel surface at the next synchronising call).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace upcycle::backend::cuda_detail {

[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* call) {
  throw Error(std::string("CUDA: ") + call + " failed: " + cudaGetErrorName(status) + " (" +
              cudaGetErrorString(status) + ")");
}
[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* call) {
  throw Error(std::string("cuBLAS: ") + call + " failed with status " + std::to_string(int(status)));
}

}  // namespace upcycle::backend::cuda_detail

#define UPCYCLE_CUDA_CHECK(call)                                                     \
  do {                                                                               \
    const cudaError_t upcycle_cuda_status_ = (call);                                 \
    if (upcycle_cuda_status_ != cudaSuccess)                                         \
      ::upcycle::backend::cuda_detail::throw_cuda_error(upcycle_cuda_status_, #call); \
  } while (0)

#define UPCYCLE_CUBLAS_CHECK(call)                                                       \
  do {                                                                                   \
    const cublasStatus_t upcycle_cublas_status_ = (call);                                \
    if (upcycle_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                 \
      ::upcycle::backend::cuda_detail::throw_cublas_error(upcycle_cublas_status_, #call); \
  } while (0)

#define UPCYCLE_CUDA_LAUNCH_CHECK() UPCYCLE_CUDA_CHECK(cudaGetLastError())
