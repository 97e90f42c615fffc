// Element-wise ops on the GPU: SwiGLU, token embedding, axpy, and the sigmoid router scores. One
// grid-stride loop each; every element is computed on its own, so results never depend on the launch
// shape. Arithmetic as the cpu backend's (elementwise.cpp, moe_ops.cpp): SwiGLU and axpy in fp32
// (expf, not the fast __expf), sigmoid scores in double as backend.h requires.
// embedding_forward reads token ids that live on the device: a negative id, which the host backends
// reject with check_ids before reading, stops the kernel with a trap (the error surfaces at the next
// synchronising call) instead of reading outside the table.
// Non-goals: other activations (GELU families are not needed yet).
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_kernels_common.cuh"

namespace upcycle::backend {
namespace cuda_detail {
namespace {

// 1/(1+e^−z): for z ≪ 0, e^−z overflows to +inf and the result is an exact 0, never NaN.
__device__ float sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }

__global__ void swiglu_forward_kernel(float* h, const float* g, const float* u, int64_t n) {
  for (int64_t e = grid_thread_index(); e < n; e += grid_stride()) h[e] = g[e] * sigmoid(g[e]) * u[e];
}

// d silu(z)/dz = σ(z)·(1 + z·(1 − σ(z))).
__global__ void swiglu_backward_kernel(float* dg, float* du, const float* dh, const float* g, const float* u,
                                       int64_t n) {
  for (int64_t e = grid_thread_index(); e < n; e += grid_stride()) {
    const float sig = sigmoid(g[e]);
    dg[e] += dh[e] * u[e] * (sig * (1.0f + g[e] * (1.0f - sig)));
    du[e] += dh[e] * (g[e] * sig);
  }
}

__global__ void embedding_forward_kernel(float* x, const float* table, const int32_t* ids, int64_t T, int64_t D) {
  for (int64_t e = grid_thread_index(); e < T * D; e += grid_stride()) {
    const int64_t t = e / D, d = e % D;
    const int32_t id = ids[t];
    if (id < 0) __trap();  // the host backends' check_ids: a negative token id is a caller bug
    x[e] = table[int64_t(id) * D + d];
  }
}

__global__ void axpy_kernel(float* y, const float* x, float alpha, int64_t n) {
  for (int64_t e = grid_thread_index(); e < n; e += grid_stride()) y[e] += alpha * x[e];
}

__global__ void sigmoid_forward_kernel(float* scores, const float* logits, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_stride())
    scores[i] = float(1.0 / (1.0 + exp(-double(logits[i]))));
}

// dσ/dz = σ(1 − σ), in double and rounded once, as the host backends.
__global__ void sigmoid_backward_kernel(float* dlogits, const float* dscores, const float* scores, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_stride())
    dlogits[i] += float(double(dscores[i]) * scores[i] * (1.0 - double(scores[i])));
}

}  // namespace
}  // namespace cuda_detail

using cuda_detail::grid_for;
using cuda_detail::kThreadsPerBlock;

void CudaBackend::swiglu_forward(float* h, const float* g, const float* u, int64_t n) {
  if (n <= 0) return;
  cuda_detail::swiglu_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream_>>>(h, g, u, n);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n) {
  if (n <= 0) return;
  cuda_detail::swiglu_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream_>>>(dg, du, dh, g, u, n);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::embedding_forward(float* x, const float* table, const int32_t* ids, int64_t T, int64_t D) {
  if (T * D <= 0) return;
  cuda_detail::embedding_forward_kernel<<<grid_for(T * D), kThreadsPerBlock, 0, stream_>>>(x, table, ids, T, D);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::axpy(float* y, const float* x, float alpha, int64_t n) {
  if (n <= 0) return;
  cuda_detail::axpy_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream_>>>(y, x, alpha, n);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::sigmoid_forward(float* scores, const float* logits, int64_t n) {
  if (n <= 0) return;
  cuda_detail::sigmoid_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream_>>>(scores, logits, n);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::sigmoid_backward(float* dlogits, const float* dscores, const float* scores, int64_t n) {
  if (n <= 0) return;
  cuda_detail::sigmoid_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream_>>>(dlogits, dscores, scores, n);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

}  // namespace upcycle::backend
