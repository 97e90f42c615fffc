// State of the cuda backend's matrix products (owned by cuda_linear.cu): the cuBLASLt handle, its
// workspace, and device scratch for the bf16-rounded copies of GEMM operands, grown on demand and
// reused across calls (never freed mid-run, so the queued GEMMs that read it stay valid).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace upcycle::backend::cuda_detail {

struct GemmState {
  explicit GemmState(cudaStream_t stream);
  ~GemmState();
  GemmState(const GemmState&) = delete;
  GemmState& operator=(const GemmState&) = delete;

  cudaStream_t stream = nullptr;
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

}  // namespace upcycle::backend::cuda_detail
