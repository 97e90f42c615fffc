// Whole models on the cuda backend (label gpu) against cpu-bf16, the host backend with the same
// precision contract: same parameters (uploaded from a host fill), same batch; logits, loss and every
// gradient of a dense Llama and its 4-expert top-2 Mixtral twin. Then bitwise determinism: a fresh
// backend and model give the same bits.
// Tolerances. Both backends round the same fp32 matmul inputs to bf16 (round to nearest even) and
// multiply them exactly (a bf16·bf16 product fits in fp32), so they differ only by fp32 accumulation
// order (~K·2⁻²⁴ relative per dot product, K ≤ 96 here: ~1e-5) and by the rare bf16 rounding of an
// activation that lands on the other side of a rounding boundary after such a difference (one input
// off by 2⁻⁸ relative, a small share of its sum). Hence logits within 1e-3 of the largest logit, the
// loss within 1e-4 relative, gradients at cosine > 0.9999. And, what would fail if the cuda matmuls ran
// fp32 or TF32 instead of bf16: cuda's distance to cpu-bf16 is under a quarter of cpu-bf16's distance
// to fp32 cpu (rounding every input moves results by ~2⁻⁹·√K relative, far more than ordering).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "backend/host_memory.h"
#include "backend/host_view.h"
#include "model/transformer.h"
#include "support/backend_test_support.h"
#include "support/model_test_support.h"

namespace upcycle {
namespace {

using backend::BackendKind;

struct StepResult {
  std::vector<float> logits;
  double loss = 0.0;
  std::vector<float> grads;  // every gradient, in parameter order
};

ModelConfig small_dense() {
  ModelConfig c = test::tiny_model_config(Family::kLlama);
  c.vocab_size = 96;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  return c;
}

// Parameters filled on the host (test::fill_random reads and writes them directly), routers ×10 so that
// no token has near-tied experts (a flipped top-2 choice is a discrete change that says nothing about
// precision; backend_bf16_test.cpp does the same).
std::vector<float> host_parameters(const ModelConfig& config) {
  model::TensorStore store = model::TensorStore::for_config(config, backend::host_memory());
  test::fill_random(store, 77, 0.1f);
  for (size_t i = 0; i < store.specs().size(); ++i)
    if (store.specs()[i].role == WeightRole::kRouter)
      for (float& v : store.view(i)) v *= 10.0f;
  return store.buffer().to_host();
}

StepResult train_step(const ModelConfig& config, BackendKind kind) {
  auto be = backend::make_backend(kind);
  model::Transformer m(config, *be);
  m.params().buffer().upload(host_parameters(config));
  if (config.is_moe()) m.set_moe_options(model::moe_options_from_config(config));
  const int64_t B = 2, Tseq = 24, T = B * Tseq;
  std::vector<int32_t> ids(static_cast<size_t>(T)), targets(ids.size());
  for (size_t t = 0; t < ids.size(); ++t) ids[t] = int32_t((t * 7 + t / 5) % size_t(config.vocab_size));
  for (size_t t = 0; t < ids.size(); ++t) targets[t] = (t + 1) % size_t(Tseq) == 0 ? -1 : ids[t + 1];
  m.zero_grads();
  const float* logits = m.forward(ids.data(), B, Tseq);
  StepResult r;
  const auto logits_host = backend::host_view(*be, logits, size_t(T * config.vocab_size));
  r.logits.assign(logits_host.data(), logits_host.data() + logits_host.size());
  r.loss = m.loss(targets.data());
  m.backward();
  r.grads = m.grads().buffer().to_host();
  return r;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return ab / std::sqrt(aa * bb);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

double l2_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(s);
}

class CudaModel : public ::testing::TestWithParam<bool> {
 protected:
  ModelConfig config() const {
    return GetParam() ? test::moe_twin(small_dense(), Family::kMixtral, 4, 2) : small_dense();
  }
};

TEST_P(CudaModel, LogitsLossAndGradientsFollowCpuBf16) {
  ASSERT_TRUE(backend::backend_available(BackendKind::kCuda)) << "no CUDA GPU is visible to this process";
  const ModelConfig c = config();
  const StepResult f32 = train_step(c, BackendKind::kCpu), bf16 = train_step(c, BackendKind::kCpuBF16),
                   gpu = train_step(c, BackendKind::kCuda);
  EXPECT_TRUE(test::all_close(gpu.logits, bf16.logits, 1e-3));
  EXPECT_NEAR(gpu.loss, bf16.loss, 1e-4 * std::fabs(bf16.loss));
  EXPECT_GT(cosine(gpu.grads, bf16.grads), 0.9999);
  // Rounded like cpu-bf16, not fp32/TF32: much nearer to cpu-bf16 than cpu-bf16 is to fp32.
  EXPECT_LT(max_abs_diff(gpu.logits, bf16.logits), 0.25 * max_abs_diff(bf16.logits, f32.logits));
  EXPECT_LT(l2_diff(gpu.grads, bf16.grads), 0.25 * l2_diff(bf16.grads, f32.grads));
}

TEST_P(CudaModel, BitwiseReproducible) {
  const ModelConfig c = config();
  const StepResult a = train_step(c, BackendKind::kCuda), b = train_step(c, BackendKind::kCuda);
  EXPECT_EQ(std::memcmp(&a.loss, &b.loss, sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(a.logits.data(), b.logits.data(), a.logits.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(a.grads.data(), b.grads.data(), a.grads.size() * sizeof(float)), 0);
}

INSTANTIATE_TEST_SUITE_P(Models, CudaModel, ::testing::Bool(),
                         [](const auto& info) { return std::string(info.param ? "moe" : "dense"); });

}  // namespace
}  // namespace upcycle
