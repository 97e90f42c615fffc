// RMSNorm and rotary embedding on the GPU, the cpu backend's arithmetic (norm.cpp, rope.cpp) per element.
// RMSNorm: one block per row; the row's Σx² and the backward's Σ dy·w·x are double, summed in the
// fixed tree order of block_sum (cuda_kernels_common.cuh). dw sums over rows: per-chunk partials in
// scratch, then a fixed-order sum per column (launch_column_sums): no atomics, bitwise reproducible.
// RoPE: one thread per (token, rotation pair i); its angle pos·inv_freq[i] and the cos/sin are double
// (positions reach 10⁵), rounded to fp32 and applied to every head of the token, as the cpu's tables.
// Non-goals: LayerNorm, partial rotary, the interleaved (GPT-J) layout.
#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_gemm_state.h"
#include "backend/cuda/cuda_kernels_common.cuh"
#include "backend/op_checks.h"

namespace upcycle::backend {
namespace cuda_detail {
namespace {

constexpr int kRowThreads = 256;  // fixed: the reduction order depends on it

__global__ void rmsnorm_forward_kernel(float* y, float* rstd, const float* x, const float* w, int64_t T, int64_t D,
                                       float eps) {
  __shared__ double scratch[32];
  for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
    const float* x_D = x + t * D;
    double sum_sq = 0.0;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) sum_sq += double(x_D[d]) * x_D[d];
    sum_sq = block_sum(sum_sq, scratch);
    const float r = float(1.0 / sqrt(sum_sq / double(D) + eps));
    if (threadIdx.x == 0) rstd[t] = r;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) y[t * D + d] = w[d] * (x_D[d] * r);
  }
}

// dx_j += r·(w_j·dy_j − x_j·coef), coef = r²/D · Σ_d dy_d·w_d·x_d.
__global__ void rmsnorm_backward_dx_kernel(float* dx, const float* dy, const float* x, const float* w,
                                           const float* rstd, int64_t T, int64_t D) {
  __shared__ double scratch[32];
  for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
    const float* x_D = x + t * D;
    const float* dy_D = dy + t * D;
    const float r = rstd[t];
    double dot = 0.0;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) dot += double(dy_D[d]) * w[d] * x_D[d];
    dot = block_sum(dot, scratch);
    const float coef = float(dot * double(r) * r / double(D));
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) dx[t * D + d] += r * (w[d] * dy_D[d] - x_D[d] * coef);
  }
}

// dw's term: dy[t,d]·x[t,d]·rstd[t] in double.
struct RmsnormWeightGrad {
  const float* dy;
  const float* x;
  const float* rstd;
  int64_t D;
  __device__ double operator()(int64_t t, int64_t d) const { return double(dy[t * D + d]) * x[t * D + d] * rstd[t]; }
};

unsigned row_blocks(int64_t T) { return unsigned(std::min<int64_t>(T, int64_t(1) << 30)); }

// pos(t) = t mod seq_len + position_offset; x[t, h, i] and x[t, h, i + S/2] rotate by ±pos·inv_freq[i].
__global__ void rope_kernel(float* x, const float* inv_freq, int64_t T, int64_t seq_len, int64_t n_heads, int64_t S,
                            int64_t position_offset, bool inverse) {
  const int64_t half = S / 2;
  for (int64_t e = grid_thread_index(); e < T * half; e += grid_stride()) {
    const int64_t t = e / half, i = e % half;
    const double pos = double(t % seq_len + position_offset);
    const double angle = (inverse ? -pos : pos) * double(inv_freq[i]);
    double s_d, c_d;
    sincos(angle, &s_d, &c_d);
    const float c = float(c_d), s = float(s_d);
    for (int64_t h = 0; h < n_heads; ++h) {
      float* x_S = x + (t * n_heads + h) * S;
      const float a = x_S[i], b = x_S[i + half];
      x_S[i] = a * c - b * s;
      x_S[i + half] = b * c + a * s;
    }
  }
}

}  // namespace
}  // namespace cuda_detail

void CudaBackend::rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t T, int64_t D,
                                  float eps) {
  using namespace cuda_detail;
  if (T == 0) return;
  rmsnorm_forward_kernel<<<row_blocks(T), kRowThreads, 0, stream_>>>(y, rstd, x, w, T, D, eps);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                                   const float* rstd, int64_t T, int64_t D) {
  using namespace cuda_detail;
  if (T == 0 || D == 0) return;
  rmsnorm_backward_dx_kernel<<<row_blocks(T), kRowThreads, 0, stream_>>>(dx, dy, x, w, rstd, T, D);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  double* partials = gemm_state().column_partials(size_t(column_sum_chunks(T) * D));
  launch_column_sums(dw, partials, T, D, RmsnormWeightGrad{dy, x, rstd, D}, stream_);
}

void CudaBackend::rope(float* x, const float* inv_freq, int64_t T, int64_t seq_len, int64_t n_heads, int64_t S,
                       int64_t position_offset, RopeDirection direction) {
  using namespace cuda_detail;
  check_rope_args(T, seq_len, n_heads, S);
  const int64_t pairs = T * (S / 2);
  if (pairs == 0) return;
  rope_kernel<<<grid_for(pairs), kThreadsPerBlock, 0, stream_>>>(x, inv_freq, T, seq_len, n_heads, S, position_offset,
                                                                 direction == RopeDirection::kInverse);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

}  // namespace upcycle::backend
