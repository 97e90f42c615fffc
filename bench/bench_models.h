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

// The GPU training benchmark's models (bench_train_step_cuda, torch_train_step.py --device cuda): a
// ~0.5B Llama (V=32000 D=1536 L=16 H=12 KV=4 S=128 F=4096, untied: 0.50B parameters) and its 8-expert
// top-2 upcycle (2.6B parameters, 0.8B active per token). fp32 master weights, gradients and both AdamW
// moments take 16 bytes per parameter: 42 GB for the MoE, which with activations fits an 80 GB H100.
inline ModelConfig dense_gpu_bench_config() {
  ModelConfig c = dense_bench_config();
  c.vocab_size = 32000;
  c.hidden_size = 1536;
  c.intermediate_size = 4096;
  c.num_hidden_layers = 16;
  c.num_attention_heads = 12;
  c.num_key_value_heads = 4;
  c.head_dim = 128;
  return c;
}

inline ModelConfig moe_gpu_bench_config() {
  const ModelConfig d = dense_gpu_bench_config();
  ModelConfig c = moe_bench_config();
  c.vocab_size = d.vocab_size;
  c.hidden_size = d.hidden_size;
  c.intermediate_size = d.intermediate_size;
  c.moe_intermediate_size = d.intermediate_size;
  c.num_hidden_layers = d.num_hidden_layers;
  c.num_attention_heads = d.num_attention_heads;
  c.num_key_value_heads = d.num_key_value_heads;
  c.head_dim = d.head_dim;
  return c;
}

}  // namespace upcycle
