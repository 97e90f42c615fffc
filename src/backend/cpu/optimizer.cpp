// CpuBackend's optimizer ops (contract in backend.h, section "Optimizer"): the loops the trainer ran
// on the host before they became ops, moved unchanged so training stays bit for bit the same.
// Determinism: the AdamW update and the scaling are element-wise (no value crosses elements), so the
// OpenMP split cannot change a bit; the norm sums fixed-size chunks in double, each chunk serially,
// then the chunk sums in chunk order — the same result for any thread count. Built with
// -ffp-contract=off -fno-math-errno (CMakeLists.txt) so the AVX-512 clones keep the scalar arithmetic.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/op_checks.h"

namespace upcycle::backend {
namespace {

// Elements per work unit: large enough to amortise scheduling, small enough to balance threads.
// Fixed (not derived from the thread count): the norm's summation order depends on it.
constexpr int64_t kChunk = int64_t{1} << 15;

// One element of torch.optim.AdamW's single-tensor update; `keep` = 1 − lr·wd (or 1 without decay).
inline void adamw_element(float& p, float& m, float& v, float g, double keep, const Backend::AdamWScalars& s) {
  const double gd = g;
  const double m_new = s.beta1 * double(m) + (1.0 - s.beta1) * gd;
  const double v_new = s.beta2 * double(v) + (1.0 - s.beta2) * gd * gd;
  m = float(m_new);
  v = float(v_new);
  const double denom = std::sqrt(double(v)) / s.bias_correction2_sqrt + s.eps;
  p = float(double(p) * keep - s.step_size * double(m) / denom);
}

// One run of elements with the same decay. Cloned per ISA (the build targets generic x86-64) so the
// double maths runs 8 lanes wide on AVX-512; every element's operations are the scalar ones in the same
// order (the file is built without fp contraction and without errno, so sqrt stays a plain IEEE sqrt),
// so each lane gives the bits the scalar loop gave.
__attribute__((target_clones("avx512f", "avx2", "default"))) void adamw_run(
    float* __restrict params, float* __restrict exp_avg, float* __restrict exp_avg_sq, const float* __restrict grads,
    int64_t n, double keep, const Backend::AdamWScalars s) {
  for (int64_t i = 0; i < n; ++i) adamw_element(params[i], exp_avg[i], exp_avg_sq[i], grads[i], keep, s);
}

// Σ x² of kLanes consecutive full chunks starting at `x`, each chunk summed serially in index order (the
// order of one loop per chunk): the kLanes dependency chains of double adds run interleaved instead of
// one after another, which the add latency otherwise serialises.
constexpr int64_t kLanes = 8;
__attribute__((target_clones("avx512f", "avx2", "default"))) void chunk_square_sums(double* sums,
                                                                                    const float* __restrict x) {
  double acc[kLanes] = {};
  for (int64_t i = 0; i < kChunk; ++i) {
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += double(x[l * kChunk + i]) * double(x[l * kChunk + i]);
  }
  for (int64_t l = 0; l < kLanes; ++l) sums[l] = acc[l];
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void scale_run(float* x, double factor, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = float(double(x[i]) * factor);
}

}  // namespace

double CpuBackend::l2_norm(const float* x, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(size_t(chunks), 0.0);
  const int64_t groups = n / (kLanes * kChunk);  // groups of kLanes full chunks; the rest one by one
#pragma omp parallel for schedule(static)
  for (int64_t group = 0; group < groups; ++group)
    chunk_square_sums(partial.data() + group * kLanes, x + group * kLanes * kChunk);
#pragma omp parallel for schedule(static)
  for (int64_t chunk = groups * kLanes; chunk < chunks; ++chunk) {
    const int64_t lo = chunk * kChunk, hi = std::min(n, lo + kChunk);
    double sum = 0.0;
    for (int64_t i = lo; i < hi; ++i) sum += double(x[i]) * double(x[i]);
    partial[size_t(chunk)] = sum;
  }
  double total = 0.0;
  for (double s : partial) total += s;  // chunk order: independent of the thread count
  return std::sqrt(total);
}

void CpuBackend::scale(float* x, double factor, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk)
    scale_run(x + chunk * kChunk, factor, std::min(kChunk, n - chunk * kChunk));
}

void CpuBackend::adamw_step(float* params, float* exp_avg, float* exp_avg_sq, const float* grads,
                            const int64_t* offsets, const uint8_t* decay, int64_t ranges, const AdamWScalars& s) {
  check_group_offsets(offsets, ranges);
  const int64_t n = offsets[ranges];
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t lo = chunk * kChunk, hi = std::min(n, lo + kChunk);
    // The last range starting at or before lo (skipping empty ones) covers lo.
    int64_t r = int64_t(std::upper_bound(offsets, offsets + ranges + 1, lo) - offsets) - 1;
    for (int64_t i = lo; i < hi; ++r) {
      const int64_t end = std::min(hi, offsets[r + 1]);
      const double keep = decay[r] != 0 ? s.decay_keep : 1.0;
      adamw_run(params + i, exp_avg + i, exp_avg_sq + i, grads + i, end - i, keep, s);
      i = end;
    }
  }
}

// E is a few dozen: a serial loop; the integer total makes the comparison exact, as in ref.
void CpuBackend::expert_bias_update(float* bias, const int64_t* load, int64_t E, double rate) {
  int64_t total = 0;
  for (int64_t e = 0; e < E; ++e) total += load[e];
  for (int64_t e = 0; e < E; ++e) {
    const int64_t scaled = load[e] * E;
    const double sign = scaled < total ? 1.0 : (scaled > total ? -1.0 : 0.0);
    bias[e] = float(double(bias[e]) + rate * sign);
  }
}

}  // namespace upcycle::backend
