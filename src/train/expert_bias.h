// Auxiliary-loss-free load balancing (DeepSeek-V3; Megatron --moe-router-enable-expert-bias): each MoE
// layer keeps a bias b[E] that is added to the router probabilities for top-k *selection* only (the
// combine weights stay p). After every optimizer step, with load_e = tokens routed to expert e during
// the step (all micro-batches) and mean = Σ load / E:
//   b_e ← b_e + γ·sign(mean − load_e)        (underloaded experts become more attractive)
// γ = --expert-bias-rate (Megatron default 1e-3). The bias is training state (saved in the checkpoint),
// not an HF weight, so exported models route without it — except dots1, where it is the
// `mlp.gate.e_score_correction_bias` weight: training starts from the saved one and writes it back.
#pragma once

#include <cstdint>
#include <span>

#include "backend/backend.h"

namespace upcycle::train {

// bias_E is backend memory of `backend`; load_E the step's host-side token counts (one per expert).
// The arithmetic is the backend's expert_bias_update op.
void update_expert_bias(backend::Backend& backend, std::span<float> bias_E, std::span<const int64_t> load_E,
                        double rate);

}  // namespace upcycle::train
