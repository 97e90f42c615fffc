// What the training-step benchmarks (train_step_bench.cpp on the CPU backends, train_step_cuda_bench.cpp
// on the GPU) share besides the model shapes of bench_models.h: the analytic FLOPs of one step (see
// train_step_bench.cpp's header for the formula) and the parameter fills — dense N(0, 0.02²), and the
// MoE as its upcycle (every expert a copy of the dense FFN, router N(0, 0.02²)). The fills write host
// memory: a device backend's model gets them by upload.
#pragma once

#include <algorithm>
#include <map>
#include <span>
#include <utility>

#include "core/rng.h"
#include "io/model_config.h"
#include "model/parameters.h"
#include "support/model_test_support.h"

namespace upcycle::bench {

// Matmul weights one token passes through (see train_step_bench.cpp's header).
inline double active_matmul_params(const ModelConfig& c) {
  const double D = double(c.hidden_size), S = double(c.head_dim);
  const double attn = D * S * double(c.num_attention_heads) * 2 + D * S * double(c.num_key_value_heads) * 2;
  double ffn = 3.0 * D * double(c.intermediate_size);
  if (c.is_moe()) ffn = D * double(c.num_experts) + double(c.num_experts_per_tok) * 3.0 * D * double(c.moe_intermediate_size);
  return double(c.num_hidden_layers) * (attn + ffn) + double(c.vocab_size) * D;
}

inline double step_flops(const ModelConfig& c, int64_t B, int64_t Tseq) {
  const double tokens = double(B * Tseq);
  return tokens * (6.0 * active_matmul_params(c) +
                   6.0 * double(c.num_hidden_layers) * double(Tseq) * double(c.num_attention_heads * c.head_dim));
}

// Dense weights ~ N(0, 0.02²) (norms around 1); the MoE copies every dense FFN into each expert and
// draws the router from N(0, 0.02²), as upcycling does.
inline void fill_dense(model::TensorStore& store) { test::fill_random(store, 1234, 0.02f); }

inline void fill_upcycled(model::TensorStore& moe, const model::TensorStore& dense) {
  std::map<std::pair<int64_t, WeightRole>, size_t> ffn;  // (layer, dense role) → dense index
  for (size_t i = 0; i < dense.specs().size(); ++i) ffn[{dense.specs()[i].layer, dense.specs()[i].role}] = i;
  for (size_t i = 0; i < moe.specs().size(); ++i) {
    const WeightSpec& s = moe.specs()[i];
    auto out = moe.view(i);
    std::span<const float> src;
    switch (s.role) {
      case WeightRole::kRouter:
        CounterRng(99, s.name).fill_normal(out.data(), 0, out.size(), 0.0f, 0.02f);
        continue;
      case WeightRole::kExpertGate: src = dense.view(ffn.at({s.layer, WeightRole::kGateProj})); break;
      case WeightRole::kExpertUp: src = dense.view(ffn.at({s.layer, WeightRole::kUpProj})); break;
      case WeightRole::kExpertDown: src = dense.view(ffn.at({s.layer, WeightRole::kDownProj})); break;
      default: src = dense.view(ffn.at({s.layer, s.role})); break;
    }
    std::copy(src.begin(), src.end(), out.begin());
  }
}

}  // namespace upcycle::bench
