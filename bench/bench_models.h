// The model shapes the training benchmarks share: the `base` Llama preset in fp32, and its
// Mixtral-style upcycle (same attention and RoPE, every FFN → 8 experts of the same width, top-2
// renormalised, no jitter, no sliding window — seq ≤ 4096 would not reach one anyway). One definition
// so the engine-step and trainer-loop benchmarks measure the same models.
#pragma once

#include <optional>

#include "io/model_config.h"
#include "io/model_presets.h"

namespace upcycle {

inline ModelConfig dense_bench_config() {
  ModelConfig c = preset_config(Family::kLlama, "base");
  c.dtype = DType::kF32;
  return c;
}

inline ModelConfig moe_bench_config() {
  const ModelConfig d = dense_bench_config();
  ModelConfig c = preset_config(Family::kMixtral, "base");
  c.dtype = DType::kF32;
  c.num_experts = 8;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = d.intermediate_size;
  c.topk_norm = TopkNorm::kRenormalize;
  c.router_jitter_noise = 0.0;
  c.sliding_window = std::nullopt;
  c.rope = d.rope;
  c.rms_norm_eps = d.rms_norm_eps;
  return c;
}

}  // namespace upcycle
