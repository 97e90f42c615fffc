// AdamW step, gradient norm and clipping (contract in adamw.h).
// Determinism: the update is element-wise (no value crosses elements), so splitting it over threads
// cannot change a bit; the gradient norm sums fixed-size chunks in double, each chunk serially, then
// the chunk sums in chunk order — the same result for any thread count. Per-element math is done in
// double and rounded once into the fp32 parameter and moments.
#include "train/adamw.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/error.h"

namespace upcycle::train {
namespace {

// Elements per work unit: large enough to amortise scheduling, small enough to balance threads.
constexpr size_t kChunk = size_t{1} << 15;

bool skips_decay(WeightRole role) {
  switch (role) {
    case WeightRole::kAttnNorm:
    case WeightRole::kMlpNorm:
    case WeightRole::kFinalNorm:
    case WeightRole::kQNorm:
    case WeightRole::kKNorm:
    case WeightRole::kQBias:
    case WeightRole::kKBias:
    case WeightRole::kVBias:
    case WeightRole::kOBias:
    case WeightRole::kRouterBias:  // no gradient: decay alone would pull the learned balance to 0
      return true;
    default:
      return false;
  }
}

struct StepConstants {
  double lr, beta1, beta2, eps;
  double step_size;    // lr / (1 − β1^t)
  double bc2_sqrt;     // sqrt(1 − β2^t)
};

// One element of torch.optim.AdamW's single-tensor update; `keep` = 1 − lr·wd (or 1 without decay).
inline void update(float& p, float& m, float& v, float g, double keep, const StepConstants& c) {
  const double gd = g;
  const double m_new = c.beta1 * double(m) + (1.0 - c.beta1) * gd;
  const double v_new = c.beta2 * double(v) + (1.0 - c.beta2) * gd * gd;
  m = float(m_new);
  v = float(v_new);
  const double denom = std::sqrt(double(v)) / c.bc2_sqrt + c.eps;
  p = float(double(p) * keep - c.step_size * double(m) / denom);
}

}  // namespace

std::vector<Decay> decay_mask(const std::vector<WeightSpec>& specs) {
  std::vector<Decay> mask;
  mask.reserve(specs.size());
  for (const WeightSpec& spec : specs) mask.push_back(skips_decay(spec.role) ? Decay::kSkip : Decay::kApply);
  return mask;
}

AdamW::AdamW(std::vector<WeightSpec> specs, AdamWConfig config)
    : specs_(std::move(specs)), config_(config), decay_(decay_mask(specs_)) {
  UPCYCLE_CHECK(config_.beta1 >= 0 && config_.beta1 < 1 && config_.beta2 >= 0 && config_.beta2 < 1,
                "AdamW: betas must lie in [0, 1) (callers validate flags)");
  UPCYCLE_CHECK(config_.eps > 0 && config_.weight_decay >= 0, "AdamW: eps must be > 0 and weight decay ≥ 0");
  size_t n = 0;
  for (const WeightSpec& spec : specs_) n += shape_numel(spec.shape);
  m_.assign(n, 0.0f);
  v_.assign(n, 0.0f);
}

void AdamW::step(float* params, const float* grads, double lr) {
  ++steps_;
  const double t = double(steps_);
  StepConstants c{lr, config_.beta1, config_.beta2, config_.eps, 0, 0};
  c.step_size = lr / (1.0 - std::pow(config_.beta1, t));
  c.bc2_sqrt = std::sqrt(1.0 - std::pow(config_.beta2, t));
  const double keep_decayed = 1.0 - lr * config_.weight_decay;

  // Per-element decay factor by spec: spec i covers [begin[i], begin[i+1]).
  std::vector<size_t> begin(specs_.size() + 1, 0);
  for (size_t i = 0; i < specs_.size(); ++i) begin[i + 1] = begin[i] + shape_numel(specs_[i].shape);
  const size_t n = m_.size();
  const int64_t chunks = int64_t((n + kChunk - 1) / kChunk);
  float* m = m_.data();
  float* v = v_.data();
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const size_t lo = size_t(chunk) * kChunk, hi = std::min(n, lo + kChunk);
    // First spec whose range reaches past lo.
    size_t spec = size_t(std::upper_bound(begin.begin(), begin.end(), lo) - begin.begin()) - 1;
    for (size_t i = lo; i < hi; ++spec) {
      const size_t end = std::min(hi, begin[spec + 1]);
      const double keep = decay_[spec] == Decay::kApply ? keep_decayed : 1.0;
      for (; i < end; ++i) update(params[i], m[i], v[i], grads[i], keep, c);
    }
  }
}

double global_grad_norm(const float* grads, size_t n) {
  const int64_t chunks = int64_t((n + kChunk - 1) / kChunk);
  std::vector<double> partial(size_t(chunks), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const size_t lo = size_t(chunk) * kChunk, hi = std::min(n, lo + kChunk);
    double sum = 0.0;
    for (size_t i = lo; i < hi; ++i) sum += double(grads[i]) * double(grads[i]);
    partial[size_t(chunk)] = sum;
  }
  double total = 0.0;
  for (double s : partial) total += s;  // chunk order: independent of the thread count
  return std::sqrt(total);
}

void scale_grads(float* grads, size_t n, double factor) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < int64_t(n); ++i) grads[i] = float(double(grads[i]) * factor);
}

double clip_factor(double norm, double max_norm) {
  // NaN norms compare false and give 1: the caller detects non-finite gradients and skips the step.
  return norm > max_norm && max_norm > 0 ? max_norm / norm : 1.0;
}

}  // namespace upcycle::train
