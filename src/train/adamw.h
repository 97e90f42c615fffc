// AdamW over a model's flat fp32 parameter buffer (model/parameters.h TensorStore layout), with
// torch.optim.AdamW semantics so runs compare with PyTorch's: for each element, at step t (1-based)
//   p ← p·(1 − lr·wd)                       (decoupled decay; wd = 0 for norms and biases)
//   m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²
//   p ← p − (lr/(1−β1^t)) · m / (sqrt(v)/sqrt(1−β2^t) + ε)
// Moments are fp32, laid out like the parameters. Gradient norm and clipping are free functions over
// the flat gradient buffer (double accumulation, fixed summation order: deterministic).
// Non-goals: other optimizers, fused/low-precision moments, per-group learning rates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/weight_table.h"

namespace upcycle::train {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
};

enum class Decay { kApply, kSkip };

// kSkip for RMSNorm weights (input/post-attention/final norms, q/k norms) and biases; kApply for every
// matrix, embeddings, routers and shared-expert gates included.
std::vector<Decay> decay_mask(const std::vector<WeightSpec>& specs);

class AdamW {
 public:
  AdamW(std::vector<WeightSpec> specs, AdamWConfig config);  // zero moments, step 0

  // One update of params[n] from grads[n], n = Σ spec sizes (the TensorStore layout of `specs`).
  void step(float* params, const float* grads, double lr);

  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  const AdamWConfig& config() const { return config_; }
  const std::vector<WeightSpec>& specs() const { return specs_; }
  std::vector<float>& exp_avg() { return m_; }
  std::vector<float>& exp_avg_sq() { return v_; }
  const std::vector<float>& exp_avg() const { return m_; }
  const std::vector<float>& exp_avg_sq() const { return v_; }

 private:
  std::vector<WeightSpec> specs_;
  AdamWConfig config_;
  std::vector<Decay> decay_;  // per spec
  std::vector<float> m_, v_;
  int64_t steps_ = 0;
};

// sqrt(Σ g²), accumulated in double in a fixed order.
double global_grad_norm(const float* grads, size_t n);
// grads ×= factor.
void scale_grads(float* grads, size_t n, double factor);
// The factor clipping to max_norm applies: max_norm/norm when norm > max_norm > 0, else 1.
// (torch.nn.utils.clip_grad_norm_ uses max_norm/(norm + 1e-6), a division guard this does not need.)
double clip_factor(double norm, double max_norm);

}  // namespace upcycle::train
