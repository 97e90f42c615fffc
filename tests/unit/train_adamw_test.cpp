// AdamW on every registered backend against an independent double-precision reimplementation of the
// textbook update (bias-corrected m̂, v̂) over several steps with changing learning rates, against a
// value computed by hand at t = 1, the weight-decay mask read off a tiny MoE model's names, the
// gradient norm (backend l2_norm) against a naive double sum (and bitwise equal for any thread count),
// and the clipping factor with the scaling op. Parameters and gradients live in backend buffers.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/buffer.h"
#include "core/rng.h"
#include "support/backend_test_support.h"
#include "support/model_test_support.h"
#include "train/adamw.h"

namespace upcycle::train {
namespace {

// Four tensors of different roles: an embedding and a matrix decay, a norm and a bias do not.
std::vector<WeightSpec> small_specs() {
  return {{"model.embed_tokens.weight", WeightRole::kEmbed, -1, -1, {3, 2}},
          {"model.layers.0.input_layernorm.weight", WeightRole::kAttnNorm, 0, -1, {2}},
          {"model.layers.0.self_attn.q_proj.weight", WeightRole::kQProj, 0, -1, {2, 2}},
          {"model.layers.0.self_attn.q_proj.bias", WeightRole::kQBias, 0, -1, {2}}};
}

std::vector<float> normal(size_t n, uint64_t seed, const std::string& stream, float scale) {
  std::vector<float> v(n);
  CounterRng(seed, stream).fill_normal(v.data(), 0, n, 0.0f, scale);
  return v;
}

// The update as papers write it, state in double: m̂ = m/(1−β1^t), v̂ = v/(1−β2^t), p −= lr·m̂/(√v̂ + ε),
// after p ×= 1 − lr·wd for decayed tensors.
struct ReferenceAdamW {
  AdamWConfig c;
  std::vector<bool> decayed;
  std::vector<double> p, m, v;
  int t = 0;
  void step(const std::vector<float>& g, double lr) {
    ++t;
    for (size_t i = 0; i < p.size(); ++i) {
      if (decayed[i]) p[i] -= lr * c.weight_decay * p[i];
      m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
      v[i] = c.beta2 * v[i] + (1 - c.beta2) * double(g[i]) * g[i];
      const double m_hat = m[i] / (1 - std::pow(c.beta1, t)), v_hat = v[i] / (1 - std::pow(c.beta2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + c.eps);
    }
  }
};

using backend::Buffer;

class AdamWOnBackend : public ::testing::TestWithParam<backend::BackendKind> {
 protected:
  // One step with host-side p and g, through backend buffers.
  void step(AdamW& opt, std::vector<float>& p, const std::vector<float>& g, double lr) {
    Buffer<float> pd(*be_, p.size()), gd(*be_, g.size());
    pd.upload(p);
    gd.upload(g);
    opt.step(pd.data(), gd.data(), lr);
    pd.download(p);
  }
  std::unique_ptr<backend::Backend> be_ = backend::make_backend(GetParam());
};

TEST_P(AdamWOnBackend, SeveralStepsMatchDoubleReference) {
  const AdamWConfig config{.beta1 = 0.8, .beta2 = 0.9, .eps = 1e-6, .weight_decay = 0.3};
  AdamW opt(*be_, small_specs(), config);
  const size_t n = 6 + 2 + 4 + 2;
  ASSERT_EQ(opt.exp_avg().size(), n);
  std::vector<float> p = normal(n, 1, "p", 1.0f);
  // Element ranges: embedding [0, 6) and q_proj [8, 12) decay; the norm [6, 8) and the bias [12, 14) do not.
  ReferenceAdamW ref{config, {}, {p.begin(), p.end()}, std::vector<double>(n), std::vector<double>(n)};
  for (size_t i = 0; i < n; ++i) ref.decayed.push_back(i < 6 || (i >= 8 && i < 12));
  const double lrs[] = {0.05, 0.02, 0.04, 0.01, 0.03};
  for (int s = 0; s < 5; ++s) {
    std::vector<float> g = normal(n, 2, "g" + std::to_string(s), 1.0f);
    g[3] = s % 2 ? 1e-7f : -1e-7f;  // |g| near ε: the ε term is visible
    step(opt, p, g, lrs[s]);
    ref.step(g, lrs[s]);
  }
  EXPECT_EQ(opt.steps(), 5);
  const std::vector<float> m = opt.exp_avg().to_host(), v = opt.exp_avg_sq().to_host();
  for (size_t i = 0; i < n; ++i) {
    EXPECT_NEAR(p[i], ref.p[i], 2e-6) << i;
    EXPECT_NEAR(m[i], ref.m[i], 1e-6 * (std::fabs(ref.m[i]) + 1e-6)) << i;
    EXPECT_NEAR(v[i], ref.v[i], 1e-6 * std::fabs(ref.v[i])) << i;
  }
}

// At t = 1, m̂ = g and v̂ = g², so p₁ = p₀·(1 − lr·wd) − lr·g/(|g| + ε).
TEST_P(AdamWOnBackend, FirstStepByHand) {
  AdamW opt(*be_, small_specs(), AdamWConfig{.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1});
  std::vector<float> p(14, 0.5f), g(14, 0.0f);
  g[0] = -2.0f;   // embedding: 0.5·(1 − 0.1·0.1) + 0.1·2/(2 + 1e-8) = 0.495 + 0.1 = 0.595
  g[1] = 1e-8f;   // embedding, |g| = ε: 0.495 − 0.1·1e-8/(2e-8) = 0.495 − 0.05 = 0.445
  g[6] = -2.0f;   // norm, no decay: 0.5 + 0.1 = 0.6
  g[12] = 4.0f;   // bias, no decay: 0.5 − 0.1 = 0.4
  step(opt, p, g, 0.1);
  EXPECT_FLOAT_EQ(p[0], 0.595f);
  EXPECT_FLOAT_EQ(p[1], 0.445f);
  EXPECT_FLOAT_EQ(p[2], 0.495f);  // g = 0: decay only
  EXPECT_FLOAT_EQ(p[6], 0.6f);
  EXPECT_FLOAT_EQ(p[7], 0.5f);    // g = 0, no decay: unchanged
  EXPECT_FLOAT_EQ(p[12], 0.4f);
  const std::vector<float> m = opt.exp_avg().to_host(), v = opt.exp_avg_sq().to_host();
  EXPECT_FLOAT_EQ(m[0], -0.2f);  // (1 − β1)·g
  EXPECT_FLOAT_EQ(v[0], 0.2f);   // (1 − β2)·g² = 0.05·4
  EXPECT_FLOAT_EQ(v[12], 0.8f);  // 0.05·16
}

bool is_norm_or_bias(const std::string& name) {
  return name.ends_with(".bias") || name.ends_with("layernorm.weight") || name.ends_with("norm.weight");
}

TEST(AdamW, DecayMaskSkipsNormsAndBiasesOnly) {
  using test::moe_twin, test::tiny_model_config;
  ModelConfig qwen2moe = moe_twin(tiny_model_config(Family::kQwen2), Family::kQwen2Moe, 4, 2);
  qwen2moe.shared_expert_intermediate_size = 6;  // shared expert and its gate; q/k/v biases
  ModelConfig qwen3moe = moe_twin(tiny_model_config(Family::kQwen3), Family::kQwen3Moe, 4, 2);  // q/k norms
  qwen3moe.o_bias = true;
  for (const ModelConfig& config : {qwen2moe, qwen3moe}) {
    const std::vector<WeightSpec> specs = expected_weights(config);
    const std::vector<Decay> mask = decay_mask(specs);
    ASSERT_EQ(mask.size(), specs.size());
    int skipped = 0, applied = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
      const std::string& name = specs[i].name;
      EXPECT_EQ(mask[i], is_norm_or_bias(name) ? Decay::kSkip : Decay::kApply) << name;
      (mask[i] == Decay::kSkip ? skipped : applied)++;
    }
    EXPECT_GE(skipped, 2 * config.num_hidden_layers + 1 + 2 * 2);  // 2 norms per layer, final norm, ≥ 2 more
    EXPECT_GT(applied, 0);
  }
  // The names the brief singles out, spelled out.
  const std::vector<WeightSpec> specs = expected_weights(qwen2moe);
  const std::vector<Decay> mask = decay_mask(specs);
  auto decay_of = [&](const std::string& name) {
    for (size_t i = 0; i < specs.size(); ++i)
      if (specs[i].name == name) return mask[i];
    ADD_FAILURE() << "no weight " << name;
    return Decay::kSkip;
  };
  EXPECT_EQ(decay_of("model.embed_tokens.weight"), Decay::kApply);
  EXPECT_EQ(decay_of("lm_head.weight"), Decay::kApply);
  EXPECT_EQ(decay_of("model.layers.1.mlp.gate.weight"), Decay::kApply);  // router
  EXPECT_EQ(decay_of("model.layers.1.mlp.shared_expert_gate.weight"), Decay::kApply);
  EXPECT_EQ(decay_of("model.layers.0.mlp.experts.3.down_proj.weight"), Decay::kApply);
  EXPECT_EQ(decay_of("model.norm.weight"), Decay::kSkip);
  EXPECT_EQ(decay_of("model.layers.1.post_attention_layernorm.weight"), Decay::kSkip);
  EXPECT_EQ(decay_of("model.layers.0.self_attn.v_proj.bias"), Decay::kSkip);
}

TEST_P(AdamWOnBackend, GradNormMatchesNaiveDoubleAndIgnoresThreadCount) {
  const int64_t n = 3 * 32768 + 1234;  // several chunks and a ragged tail
  const std::vector<float> g_host = normal(size_t(n), 5, "g", 0.3f);
  Buffer<float> g(*be_, g_host.size());
  g.upload(g_host);
  double naive = 0;
  for (float x : g_host) naive += double(x) * x;
  naive = std::sqrt(naive);
  const double norm = be_->l2_norm(g.data(), n);
  EXPECT_NEAR(norm, naive, 1e-12 * naive);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double serial = be_->l2_norm(g.data(), n);
  omp_set_num_threads(3);
  const double three = be_->l2_norm(g.data(), n);
  omp_set_num_threads(threads);
  EXPECT_EQ(serial, norm);
  EXPECT_EQ(three, norm);
  EXPECT_EQ(be_->l2_norm(g.data(), 0), 0.0);
  Buffer<float> hand(*be_, 2);
  hand.upload(std::vector<float>{3.0f, -4.0f});
  EXPECT_EQ(be_->l2_norm(hand.data(), 2), 5.0);
}

TEST_P(AdamWOnBackend, ClipFactorAndScaling) {
  EXPECT_EQ(clip_factor(4.0, 1.0), 0.25);
  EXPECT_EQ(clip_factor(0.5, 1.0), 1.0);           // under the limit
  EXPECT_EQ(clip_factor(1.0, 1.0), 1.0);           // at the limit
  EXPECT_EQ(clip_factor(10.0, 0.0), 1.0);          // max_norm 0: clipping off
  EXPECT_EQ(clip_factor(std::nan(""), 1.0), 1.0);  // the caller skips non-finite steps
  const std::vector<float> before = normal(1000, 9, "g", 2.0f);
  Buffer<float> g(*be_, before.size());
  g.upload(before);
  const double norm = be_->l2_norm(g.data(), 1000);
  ASSERT_GT(norm, 1.0);
  be_->scale(g.data(), clip_factor(norm, 1.0), 1000);
  EXPECT_NEAR(be_->l2_norm(g.data(), 1000), 1.0, 1e-6);
  const std::vector<float> after = g.to_host();
  for (size_t i = 0; i < after.size(); ++i) EXPECT_FLOAT_EQ(after[i], float(double(before[i]) / norm)) << i;
}

INSTANTIATE_TEST_SUITE_P(Backends, AdamWOnBackend, ::testing::ValuesIn(test::backend_kinds()),
                         test::BackendTestName());

}  // namespace
}  // namespace upcycle::train
