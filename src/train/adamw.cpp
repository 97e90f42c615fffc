// AdamW's coordination (contract in adamw.h): the step's scalars on the host, the element-wise
// update in the backend's adamw_step op. The scalars are computed exactly as the loop that preceded
// the op did (same pow/sqrt calls on the same doubles), so training is bit for bit unchanged.
#include "train/adamw.h"

#include <cmath>
#include <utility>

#include "core/error.h"

namespace upcycle::train {
namespace {

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

}  // namespace

std::vector<Decay> decay_mask(const std::vector<WeightSpec>& specs) {
  std::vector<Decay> mask;
  mask.reserve(specs.size());
  for (const WeightSpec& spec : specs) mask.push_back(skips_decay(spec.role) ? Decay::kSkip : Decay::kApply);
  return mask;
}

AdamW::AdamW(backend::Backend& backend, std::vector<WeightSpec> specs, AdamWConfig config)
    : backend_(&backend), specs_(std::move(specs)), config_(config) {
  UPCYCLE_CHECK(config_.beta1 >= 0 && config_.beta1 < 1 && config_.beta2 >= 0 && config_.beta2 < 1,
                "AdamW: betas must lie in [0, 1) (callers validate flags)");
  UPCYCLE_CHECK(config_.eps > 0 && config_.weight_decay >= 0, "AdamW: eps must be > 0 and weight decay ≥ 0");
  offsets_.assign(specs_.size() + 1, 0);
  for (size_t i = 0; i < specs_.size(); ++i) offsets_[i + 1] = offsets_[i] + shape_numel(specs_[i].shape);
  for (Decay d : decay_mask(specs_)) decay_.push_back(d == Decay::kApply ? 1 : 0);
  m_ = backend::Buffer<float>(backend, size_t(offsets_.back()));
  v_ = backend::Buffer<float>(backend, size_t(offsets_.back()));
}

void AdamW::step(float* params, const float* grads, double lr) {
  ++steps_;
  const double t = double(steps_);
  backend::Backend::AdamWScalars s;
  s.beta1 = config_.beta1;
  s.beta2 = config_.beta2;
  s.eps = config_.eps;
  s.step_size = lr / (1.0 - std::pow(config_.beta1, t));
  s.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(config_.beta2, t));
  s.decay_keep = 1.0 - lr * config_.weight_decay;
  backend_->adamw_step(params, m_.data(), v_.data(), grads, offsets_.data(), decay_.data(),
                       int64_t(specs_.size()), s);
}

double clip_factor(double norm, double max_norm) {
  // NaN norms compare false and give 1: the caller detects non-finite gradients and skips the step.
  return norm > max_norm && max_norm > 0 ? max_norm / norm : 1.0;
}

}  // namespace upcycle::train
