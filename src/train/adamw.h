// AdamW over a model's flat fp32 parameter buffer (model/parameters.h TensorStore layout), with
// torch.optim.AdamW semantics so runs compare with PyTorch's: for each element, at step t (1-based)
//   p ← p·(1 − lr·wd)                       (decoupled decay; wd = 0 for norms and biases)
//   m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²
//   p ← p − (lr/(1−β1^t)) · m / (sqrt(v)/sqrt(1−β2^t) + ε)
// Moments are fp32 backend buffers laid out like the parameters. The element-wise maths is the
// backend's adamw_step op (backend.h, "Optimizer"); this class keeps the step count, the per-tensor
// decay ranges and the step's scalars. The gradient norm and the scaling are the backend's l2_norm
// and scale ops; clip_factor below is the host's scalar decision between them.
// Non-goals: other optimizers, fused/low-precision moments, per-group learning rates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/buffer.h"
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
  // Zero moments on `backend` (which must outlive the optimizer), step 0.
  AdamW(backend::Backend& backend, std::vector<WeightSpec> specs, AdamWConfig config);

  // One update of params[n] from grads[n] (backend memory), n = Σ spec sizes (the TensorStore layout
  // of `specs`).
  void step(float* params, const float* grads, double lr);

  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  const AdamWConfig& config() const { return config_; }
  const std::vector<WeightSpec>& specs() const { return specs_; }
  // The moments (backend memory: read and write them with download/upload, optimizer_state.cpp).
  backend::Buffer<float>& exp_avg() { return m_; }
  backend::Buffer<float>& exp_avg_sq() { return v_; }
  const backend::Buffer<float>& exp_avg() const { return m_; }
  const backend::Buffer<float>& exp_avg_sq() const { return v_; }
  // Element offset of each spec in the flat buffers, plus the total at the end.
  const std::vector<int64_t>& offsets() const { return offsets_; }

 private:
  backend::Backend* backend_;
  std::vector<WeightSpec> specs_;
  AdamWConfig config_;
  std::vector<int64_t> offsets_;  // specs_.size() + 1
  std::vector<uint8_t> decay_;    // per spec: 1 = Decay::kApply (the adamw_step op's flag)
  backend::Buffer<float> m_, v_;
  int64_t steps_ = 0;
};

// The factor clipping to max_norm applies: max_norm/norm when norm > max_norm > 0, else 1.
// (torch.nn.utils.clip_grad_norm_ uses max_norm/(norm + 1e-6), a division guard this does not need.)
double clip_factor(double norm, double max_norm);

}  // namespace upcycle::train
