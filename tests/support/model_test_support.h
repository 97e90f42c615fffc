// Helpers for model tests: tiny configs of each dense family built in code, random parameter
// fills (norm weights around 1, so their gradients are not degenerate) and an independent llama3
// RoPE frequency formula written from the Llama 3.1 reference (not from src/model/rope.cpp).
// Header-only so only the tests that need the model library pull it in.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <optional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "io/model_config.h"
#include "model/parameters.h"
#include "model/transformer.h"

namespace upcycle::test {

// D=8, L=2, H=2, KV=1, S=4, F=12, V=11 unless overridden by the caller afterwards.
inline ModelConfig tiny_model_config(Family family) {
  ModelConfig c = default_model_config(family);
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = false;
  c.dtype = DType::kF32;
  return c;
}

// The MoE twin of a tiny dense config: E experts of the dense FFN's width, top-k renormalised.
inline ModelConfig moe_twin(const ModelConfig& dense, Family family, int64_t experts, int64_t top_k) {
  ModelConfig c = dense;
  c.family = family;
  c.num_experts = experts;
  c.num_experts_per_tok = top_k;
  c.moe_intermediate_size = dense.intermediate_size;
  c.shared_expert_intermediate_size = 0;
  c.decoder_sparse_step = 1;
  c.topk_norm = TopkNorm::kRenormalize;
  if (family == Family::kQwen3Moe) c.max_window_layers = 0;  // qwen3_moe's (unused) window spans every layer
  return c;
}

// Every weight ~ N(0, scale²), except norm weights ~ 1 + N(0, scale²).
inline void fill_random(model::TensorStore& store, uint64_t seed, float scale) {
  for (size_t i = 0; i < store.specs().size(); ++i) {
    const WeightSpec& spec = store.specs()[i];
    auto v = store.view(i);
    CounterRng(seed, spec.name).fill_normal(v.data(), 0, v.size(), 0.0f, scale);
    const bool norm = spec.role == WeightRole::kAttnNorm || spec.role == WeightRole::kMlpNorm ||
                      spec.role == WeightRole::kFinalNorm || spec.role == WeightRole::kQNorm ||
                      spec.role == WeightRole::kKNorm;
    if (norm)
      for (float& x : v) x += 1.0f;
  }
}

// Llama 3.1 frequency scaling, per frequency, in double: long wavelengths divided by `factor`,
// short ones kept, the band between blended linearly in L/wavelen.
inline std::vector<double> llama3_inv_freq_reference(double theta, int64_t S, double factor, double low, double high,
                                                     double original_len) {
  std::vector<double> out;
  for (int64_t i = 0; i < S; i += 2) {
    const double base = std::pow(theta, -double(i) / double(S));
    const double wavelen = 2 * std::numbers::pi / base;
    double f;
    if (wavelen < original_len / high) {
      f = base;
    } else if (wavelen > original_len / low) {
      f = base / factor;
    } else {
      const double s = (original_len / wavelen - low) / (high - low);
      f = (1 - s) * base / factor + s * base;
    }
    out.push_back(f);
  }
  return out;
}

// Central differences (step 1e-3 in fp32) of `objective` with respect to the parameters of `m`,
// compared with m.grads() (filled by the caller for the same objective). Every element of each
// tensor when `max_per_tensor` is 0, else an even spread of about that many. Each tensor must have a
// non-trivial gradient, so a backward that writes nothing cannot pass — except routed experts, which
// legitimately get none when no token is routed to them (their finite differences must then be 0 too).
// Returns the elements checked.
template <typename Objective>
size_t expect_parameter_grads_match(model::Transformer& m, Objective&& objective, size_t max_per_tensor = 0) {
  const float h = 1e-3f;  // truncation O(h²), rounding O(1e-7·loss/h)
  size_t checked = 0;
  for (size_t i = 0; i < m.params().specs().size(); ++i) {
    const std::string& name = m.params().specs()[i].name;
    auto p = m.params().view(i);
    auto g = m.grads().view(i);
    double scale = 0;
    for (float x : g) scale = std::max(scale, double(std::fabs(x)));
    const WeightRole role = m.params().specs()[i].role;
    const bool routed_expert =
        role == WeightRole::kExpertGate || role == WeightRole::kExpertUp || role == WeightRole::kExpertDown;
    if (!routed_expert) {
      EXPECT_GT(scale, 1e-4) << name << ": gradient vanishes, the check would be vacuous";
    }
    const size_t stride = max_per_tensor ? std::max<size_t>(1, p.size() / max_per_tensor) : 1;
    for (size_t e = 0; e < p.size(); e += stride) {
      const float saved = p[e];
      p[e] = saved + h;
      const double up = objective();
      p[e] = saved - h;
      const double down = objective();
      p[e] = saved;
      const double fd = (up - down) / (2.0 * double(h));
      EXPECT_NEAR(g[e], fd, 2e-3 * scale + 1e-2 * std::fabs(fd) + 2e-4) << name << "[" << e << "]";
      ++checked;
    }
  }
  return checked;
}

}  // namespace upcycle::test
