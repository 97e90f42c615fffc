// RefBackend's optimizer ops (contract in backend.h, section "Optimizer"): the plain serial loops that
// state the maths — the oracle for the cpu backend's threaded versions. The per-element AdamW
// arithmetic is the contract's, term for term (so ref and cpu agree bit for bit); the norm sums in
// element order, which differs from cpu's chunked order only in the last bits of a double.
// Non-goals: speed, threading.
#include <cmath>

#include "backend/op_checks.h"
#include "backend/ref/ref_backend.h"

namespace upcycle::backend {

double RefBackend::l2_norm(const float* x, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += double(x[i]) * double(x[i]);
  return std::sqrt(sum);
}

void RefBackend::scale(float* x, double factor, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = float(double(x[i]) * factor);
}

void RefBackend::adamw_step(float* params, float* exp_avg, float* exp_avg_sq, const float* grads,
                            const int64_t* offsets, const uint8_t* decay, int64_t ranges, const AdamWScalars& s) {
  check_group_offsets(offsets, ranges);
  for (int64_t r = 0; r < ranges; ++r) {
    const double keep = decay[r] != 0 ? s.decay_keep : 1.0;
    for (int64_t i = offsets[r]; i < offsets[r + 1]; ++i) {
      const double g = grads[i];
      exp_avg[i] = float(s.beta1 * double(exp_avg[i]) + (1.0 - s.beta1) * g);
      exp_avg_sq[i] = float(s.beta2 * double(exp_avg_sq[i]) + (1.0 - s.beta2) * g * g);
      const double denom = std::sqrt(double(exp_avg_sq[i])) / s.bias_correction2_sqrt + s.eps;
      params[i] = float(double(params[i]) * keep - s.step_size * double(exp_avg[i]) / denom);
    }
  }
}

void RefBackend::expert_bias_update(float* bias, const int64_t* load, int64_t E, double rate) {
  int64_t total = 0;
  for (int64_t e = 0; e < E; ++e) total += load[e];
  for (int64_t e = 0; e < E; ++e) {
    // load[e] < mean ⇔ E·load[e] < Σ load, compared in integers: an expert exactly at the mean stays.
    const double sign = load[e] * E < total ? 1.0 : (load[e] * E > total ? -1.0 : 0.0);
    bias[e] = float(double(bias[e]) + rate * sign);
  }
}

}  // namespace upcycle::backend
