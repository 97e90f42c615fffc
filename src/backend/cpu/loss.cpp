// Mean token cross-entropy with HF's ignore convention (target < 0 is skipped), rows in parallel.
// Each row's loss goes to its own slot and the slots are summed serially afterwards, so the loss is
// bitwise reproducible for any thread count. Log-softmax subtracts the row max first (stable for any
// logit range); the per-row sum runs in double since V reaches 150k. Non-goals: label smoothing, z-loss.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/vec_exp.h"
#include "backend/op_checks.h"

namespace upcycle::backend {
namespace {

// dl = softmax(l)·grad_scale over one row; returns lse. vec_exp instead of std::exp (a scalar libm
// call) so both passes vectorise, cloned per ISA as the build targets generic x86-64; the sum of
// exponentials runs in double lanes of fixed order (deterministic).
__attribute__((target_clones("avx512f", "avx2", "default"))) float softmax_grad_row(float* dl_V, const float* l_V,
                                                                                    int64_t V, float grad_scale) {
  float max_logit = -INFINITY;
#pragma omp simd reduction(max : max_logit)
  for (int64_t c = 0; c < V; ++c) max_logit = std::max(max_logit, l_V[c]);
  double denom = 0.0;
#pragma omp simd reduction(+ : denom)
  for (int64_t c = 0; c < V; ++c) denom += double(cpu_detail::vec_exp(l_V[c] - max_logit));
  const float lse = max_logit + float(std::log(denom));
#pragma omp simd
  for (int64_t c = 0; c < V; ++c) dl_V[c] = cpu_detail::vec_exp(l_V[c] - lse) * grad_scale;
  return lse;
}

}  // namespace

double CpuBackend::cross_entropy(float* dlogits, const float* logits, const int32_t* targets, int64_t T, int64_t V,
                                 float dloss) {
  check_targets(targets, T, V);
  int64_t counted = 0;
  for (int64_t t = 0; t < T; ++t) counted += targets[t] >= 0;
  // With nothing counted the mean is defined as 0 and every gradient row is zero.
  const float grad_scale = counted > 0 ? float(double(dloss) / double(counted)) : 0.0f;
  std::vector<double> row_loss(size_t(T), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* l_V = logits + t * V;
    float* dl_V = dlogits + t * V;
    if (targets[t] < 0) {
      std::fill_n(dl_V, V, 0.0f);
      continue;
    }
    const float lse = softmax_grad_row(dl_V, l_V, V, grad_scale);
    row_loss[size_t(t)] = double(lse) - l_V[targets[t]];
    dl_V[targets[t]] -= grad_scale;
  }
  double loss_sum = 0.0;
  for (int64_t t = 0; t < T; ++t) loss_sum += row_loss[size_t(t)];
  return counted > 0 ? loss_sum / double(counted) : 0.0;
}

}  // namespace upcycle::backend
