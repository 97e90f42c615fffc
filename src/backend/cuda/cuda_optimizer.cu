// The cuda backend's optimizer ops (backend.h, "Optimizer"), mirroring src/backend/ref/ref_optimizer.cpp:
//   l2_norm — Σ x² in double in a fixed two-pass order (a fixed grid of blocks, each a strided sum per
//     thread and a pairwise tree, then one block's tree over the block sums): the same bits on every run
//     and every GPU, not the ref's serial order; the total comes back to the host (the op synchronises);
//   scale, adamw_step, expert_bias_update — per element, the ref's arithmetic term for term (bitwise
//     equal), with round-to-nearest intrinsics so nvcc cannot contract a product and a sum into an fma.
// Host arrays travel with the launch, by value: adamw_step's ranges and decay flags in tables of up to
// kRangesPerLaunch ranges (one launch per table, normally one), expert_bias_update's signs — computed on
// the host from the loads with the ref's integer comparison — in chunks of kBiasPerLaunch experts.
// Nothing is uploaded, so neither op synchronises.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_kernels_common.cuh"
#include "backend/cuda/cuda_routing_state.h"
#include "backend/op_checks.h"

namespace upcycle::backend {
namespace {

// --- Launch helpers: cuda_kernels_common.cuh's ---
using cuda_detail::block_tree_sum;
using cuda_detail::grid_for;
using cuda_detail::grid_stride;
using cuda_detail::grid_thread_index;
constexpr int kThreads = cuda_detail::kThreadsPerBlock;

// --- l2_norm ---
// The grid is a constant, not a function of the GPU, so the summation order is the same everywhere.
constexpr int kNormBlocks = 1024;  // also the thread count of the second pass
constexpr int kNormThreads = 256;

__global__ void sum_squares_blocks_kernel(double* block_sums, const float* x, int64_t n) {
  __shared__ double shared[kNormThreads];
  double sum = 0.0;
  for (int64_t i = int64_t(blockIdx.x) * kNormThreads + threadIdx.x; i < n; i += int64_t(kNormBlocks) * kNormThreads) {
    const double v = x[i];
    sum = __dadd_rn(sum, __dmul_rn(v, v));
  }
  sum = block_tree_sum<kNormThreads>(sum, shared);
  if (threadIdx.x == 0) block_sums[blockIdx.x] = sum;
}

__global__ void sum_blocks_kernel(double* total, const double* block_sums) {
  __shared__ double shared[kNormBlocks];
  const double sum = block_tree_sum<kNormBlocks>(block_sums[threadIdx.x], shared);
  if (threadIdx.x == 0) total[0] = sum;
}

// --- scale ---
__global__ void scale_kernel(float* x, double factor, int64_t n) {
  for (int64_t i = grid_thread_index(); i < n; i += grid_stride())
    x[i] = float(__dmul_rn(double(x[i]), factor));
}

// --- adamw_step ---
constexpr int kRangesPerLaunch = 256;  // keeps the table (2.3 KB) within the classic 4 KB parameter limit

struct AdamWRangeTable {
  int64_t begin[kRangesPerLaunch + 1];  // ranges [begin[r], begin[r+1]), r < count
  uint8_t decay[kRangesPerLaunch];
  int count;
};

struct AdamWConstants {
  double beta1, one_minus_beta1, beta2, one_minus_beta2, eps, step_size, bias_correction2_sqrt, decay_keep;
};

// One element per thread (grid-stride) over the table's span; its range is the last r with
// begin[r] ≤ i (an empty range shares its begin with the next, which then wins).
__global__ void adamw_kernel(float* params, float* exp_avg, float* exp_avg_sq, const float* grads,
                             const __grid_constant__ AdamWRangeTable table, AdamWConstants c) {
  const int64_t first = table.begin[0], n = table.begin[table.count] - first;
  for (int64_t j = grid_thread_index(); j < n; j += grid_stride()) {
    const int64_t i = first + j;
    int lo = 0, hi = table.count - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (table.begin[mid] <= i)
        lo = mid;
      else
        hi = mid - 1;
    }
    const double keep = table.decay[lo] != 0 ? c.decay_keep : 1.0;
    const double g = grads[i];
    const float m = float(__dadd_rn(__dmul_rn(c.beta1, double(exp_avg[i])), __dmul_rn(c.one_minus_beta1, g)));
    const float v =
        float(__dadd_rn(__dmul_rn(c.beta2, double(exp_avg_sq[i])), __dmul_rn(__dmul_rn(c.one_minus_beta2, g), g)));
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const double denom = __dadd_rn(__ddiv_rn(__dsqrt_rn(double(v)), c.bias_correction2_sqrt), c.eps);
    params[i] =
        float(__dsub_rn(__dmul_rn(double(params[i]), keep), __ddiv_rn(__dmul_rn(c.step_size, double(m)), denom)));
  }
}

// --- expert_bias_update ---
constexpr int kBiasPerLaunch = 1024;

struct BiasSigns {
  int8_t sign[kBiasPerLaunch];  // +1: below the mean load, −1: above, 0: at it
};

__global__ void expert_bias_kernel(float* bias, const __grid_constant__ BiasSigns signs, int64_t count, double rate) {
  for (int64_t e = grid_thread_index(); e < count; e += grid_stride())
    bias[e] = float(__dadd_rn(double(bias[e]), __dmul_rn(rate, double(signs.sign[e]))));
}

}  // namespace

double CudaBackend::l2_norm(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  cuda_detail::RoutingState& rs = routing_state();
  auto* block_sums = rs.get<double>(rs.partials, kNormBlocks);
  auto* total = rs.get<double>(rs.result, 1);
  sum_squares_blocks_kernel<<<kNormBlocks, kNormThreads, 0, stream_>>>(block_sums, x, n);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  sum_blocks_kernel<<<1, kNormBlocks, 0, stream_>>>(total, block_sums);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  double sum = 0.0;
  download(&sum, total, sizeof(double));  // synchronous: the step's one readback
  return std::sqrt(sum);
}

void CudaBackend::scale(float* x, double factor, int64_t n) {
  if (n <= 0) return;
  scale_kernel<<<grid_for(n), kThreads, 0, stream_>>>(x, factor, n);
  UPCYCLE_CUDA_LAUNCH_CHECK();
}

void CudaBackend::adamw_step(float* params, float* exp_avg, float* exp_avg_sq, const float* grads,
                             const int64_t* offsets, const uint8_t* decay, int64_t ranges, const AdamWScalars& s) {
  check_group_offsets(offsets, ranges);
  const AdamWConstants c{.beta1 = s.beta1,
                         .one_minus_beta1 = 1.0 - s.beta1,  // the ref's (1 − β1), the same IEEE subtraction
                         .beta2 = s.beta2,
                         .one_minus_beta2 = 1.0 - s.beta2,
                         .eps = s.eps,
                         .step_size = s.step_size,
                         .bias_correction2_sqrt = s.bias_correction2_sqrt,
                         .decay_keep = s.decay_keep};
  for (int64_t r0 = 0; r0 < ranges; r0 += kRangesPerLaunch) {
    AdamWRangeTable table{};
    table.count = int(std::min<int64_t>(kRangesPerLaunch, ranges - r0));
    for (int r = 0; r <= table.count; ++r) table.begin[r] = offsets[r0 + r];
    for (int r = 0; r < table.count; ++r) table.decay[r] = decay[r0 + r];
    const int64_t n = table.begin[table.count] - table.begin[0];
    if (n == 0) continue;
    adamw_kernel<<<grid_for(n), kThreads, 0, stream_>>>(params, exp_avg, exp_avg_sq, grads, table, c);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
}

void CudaBackend::expert_bias_update(float* bias, const int64_t* load, int64_t E, double rate) {
  int64_t total = 0;
  for (int64_t e = 0; e < E; ++e) total += load[e];
  for (int64_t e0 = 0; e0 < E; e0 += kBiasPerLaunch) {
    BiasSigns signs{};
    const int64_t count = std::min<int64_t>(kBiasPerLaunch, E - e0);
    for (int64_t k = 0; k < count; ++k) {
      // The ref's comparison: load[e] < mean ⇔ E·load[e] < Σ load, in integers; an expert at the mean stays.
      const int64_t scaled = load[e0 + k] * E;
      signs.sign[k] = int8_t(scaled < total ? 1 : (scaled > total ? -1 : 0));
    }
    expert_bias_kernel<<<grid_for(count), kThreads, 0, stream_>>>(bias + e0, signs, count, rate);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace upcycle::backend
