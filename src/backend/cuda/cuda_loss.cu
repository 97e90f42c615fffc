// Mean token cross-entropy on the GPU with HF's ignore convention (target < 0 is skipped), the cpu
// backend's arithmetic (loss.cpp) per row: fp32 max, Σ exp in double, lse in fp32, dlogits =
// softmax·grad_scale − grad_scale at the target. Three launches: count the targets (the mean's
// denominator and the invalid ones) in one block; one block per row for its loss and dlogits (each row
// loss to its own slot); one block sums the slots in a fixed tree order. The sum, the count and the
// invalid count come back in one download (the op's one sync), so the loss is bitwise reproducible.
// Targets live on the device, so a target ≥ V is detected there and reported after the download (the
// host backends' check_targets); such a row is left zero rather than read out of bounds.
// Non-goals: label smoothing, z-loss.
#include <algorithm>
#include <cstdint>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_kernels_common.cuh"
#include "core/error.h"

namespace upcycle::backend {
namespace cuda_detail {
namespace {

constexpr int kLossThreads = 256;  // fixed: the reduction order depends on it

struct LossTotals {
  double loss_sum;
  long long counted;  // targets ≥ 0
  long long invalid;  // targets ≥ V
};

__global__ void count_targets_kernel(LossTotals* totals, const int32_t* targets, int64_t T, int64_t V) {
  __shared__ long long scratch[32];
  long long counted = 0, invalid = 0;
  for (int64_t t = threadIdx.x; t < T; t += blockDim.x) {
    counted += targets[t] >= 0;
    invalid += targets[t] >= V;
  }
  counted = block_sum(counted, scratch);
  invalid = block_sum(invalid, scratch);
  if (threadIdx.x == 0) {
    totals->counted = counted;
    totals->invalid = invalid;
  }
}

__global__ void cross_entropy_rows_kernel(float* dlogits, double* row_loss, const float* logits,
                                          const int32_t* targets, const LossTotals* totals, int64_t T, int64_t V,
                                          float dloss) {
  __shared__ float scratch_f[32];
  __shared__ double scratch_d[32];
  const long long counted = totals->counted;
  // With nothing counted the mean is defined as 0 and every gradient row is zero.
  const float grad_scale = counted > 0 ? float(double(dloss) / double(counted)) : 0.0f;
  for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
    const float* l_V = logits + t * V;
    float* dl_V = dlogits + t * V;
    const int32_t target = targets[t];
    if (target < 0 || target >= V) {
      for (int64_t c = threadIdx.x; c < V; c += blockDim.x) dl_V[c] = 0.0f;
      if (threadIdx.x == 0) row_loss[t] = 0.0;
      continue;
    }
    float max_logit = -INFINITY;
    for (int64_t c = threadIdx.x; c < V; c += blockDim.x) max_logit = max_logit < l_V[c] ? l_V[c] : max_logit;
    max_logit = block_max(max_logit, scratch_f);
    double denom = 0.0;
    for (int64_t c = threadIdx.x; c < V; c += blockDim.x) denom += double(expf(l_V[c] - max_logit));
    denom = block_sum(denom, scratch_d);
    const float lse = max_logit + float(log(denom));
    for (int64_t c = threadIdx.x; c < V; c += blockDim.x) {
      float g = expf(l_V[c] - lse) * grad_scale;
      if (c == target) g -= grad_scale;
      dl_V[c] = g;
    }
    if (threadIdx.x == 0) row_loss[t] = double(lse) - l_V[target];
  }
}

__global__ void sum_row_losses_kernel(LossTotals* totals, const double* row_loss, int64_t T) {
  __shared__ double scratch[32];
  double sum = 0.0;
  for (int64_t t = threadIdx.x; t < T; t += blockDim.x) sum += row_loss[t];
  sum = block_sum(sum, scratch);
  if (threadIdx.x == 0) totals->loss_sum = sum;
}

}  // namespace
}  // namespace cuda_detail

double CudaBackend::cross_entropy(float* dlogits, const float* logits, const int32_t* targets, int64_t T, int64_t V,
                                  float dloss) {
  using namespace cuda_detail;
  if (T == 0) return 0.0;
  // Scratch: the row losses, then the totals; stream-ordered, freed once the result is downloaded.
  void* scratch = nullptr;
  UPCYCLE_CUDA_CHECK(cudaMallocAsync(&scratch, size_t(T) * sizeof(double) + sizeof(LossTotals), stream_));
  auto* row_loss = static_cast<double*>(scratch);
  auto* totals = reinterpret_cast<LossTotals*>(row_loss + T);
  count_targets_kernel<<<1, kLossThreads, 0, stream_>>>(totals, targets, T, V);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  const unsigned rows = unsigned(std::min<int64_t>(T, int64_t(1) << 30));
  cross_entropy_rows_kernel<<<rows, kLossThreads, 0, stream_>>>(dlogits, row_loss, logits, targets, totals, T, V,
                                                                 dloss);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  sum_row_losses_kernel<<<1, kLossThreads, 0, stream_>>>(totals, row_loss, T);
  UPCYCLE_CUDA_LAUNCH_CHECK();
  LossTotals host = {};
  UPCYCLE_CUDA_CHECK(cudaMemcpyAsync(&host, totals, sizeof host, cudaMemcpyDeviceToHost, stream_));
  UPCYCLE_CUDA_CHECK(cudaFreeAsync(scratch, stream_));
  UPCYCLE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  UPCYCLE_CHECK(host.invalid == 0, "cross_entropy: " + std::to_string(host.invalid) + " target(s) ≥ vocab " +
                                       std::to_string(V));
  return host.counted > 0 ? host.loss_sum / double(host.counted) : 0.0;
}

}  // namespace upcycle::backend
