// AdamW state on disk, beside the model in a training checkpoint: `optimizer.safetensors` holds fp32
// tensors "exp_avg.<param name>" and "exp_avg_sq.<param name>" (param names are the canonical HF
// names, shapes the parameters'), and __metadata__ {"format": "pt", "step": "<t>", "beta1", "beta2",
// "eps", "weight_decay"} as decimal strings. Written atomically by the caller's staged directory.
// --init-optimizer from-dense: an upcycled model's moments start from a dense run's — every parameter
// takes the dense moment of the same name; each routed expert (and shared expert) of layer l takes the
// dense FFN's gate/up/down moments of layer l when the shapes are equal (copy upcycling, G = 1);
// routers and anything without a counterpart of equal shape start at zero and are reported.
// Non-goals: slicing moments for fine-grained experts, other optimizers' state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "train/adamw.h"

namespace upcycle::train {

// Creates `file` (it must not exist yet), one safetensors file whatever its size.
void save_optimizer_state(const AdamW& optimizer, const std::filesystem::path& file);
// Restores moments and step; Error naming the file when a tensor is missing, not F32, of another
// shape, or has no parameter in this model, or the step is missing; the optimizer is unchanged then.
// The hyper-parameters in the metadata are informational (a resumed run may change them).
void load_optimizer_state(AdamW& optimizer, const std::filesystem::path& file);

struct MomentBroadcast {
  int64_t copied = 0;                    // parameters whose moments came from the dense state
  std::vector<std::string> fresh;        // parameters left at zero moments
};
// Fills `optimizer` (of the upcycled model; its step count is left unchanged) from a dense model's
// optimizer.safetensors. Error naming the file when it is not a valid optimizer state.
MomentBroadcast broadcast_dense_moments(AdamW& optimizer, const std::filesystem::path& dense_optimizer_file);

}  // namespace upcycle::train
