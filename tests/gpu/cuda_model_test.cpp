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
#include "support/backend_test_support.h"
#include "support/precision_step_support.h"

namespace upcycle {
namespace {

using backend::BackendKind;
using test::cosine;
using test::precision_train_step;
using StepResult = test::PrecisionStep;

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
    return GetParam() ? test::precision_moe_config() : test::precision_dense_config();
  }
};

TEST_P(CudaModel, LogitsLossAndGradientsFollowCpuBf16) {
  ASSERT_TRUE(backend::backend_available(BackendKind::kCuda)) << "no CUDA GPU is visible to this process";
  const ModelConfig c = config();
  const StepResult f32 = precision_train_step(c, BackendKind::kCpu), bf16 = precision_train_step(c, BackendKind::kCpuBF16),
                   gpu = precision_train_step(c, BackendKind::kCuda);
  EXPECT_TRUE(test::all_close(gpu.logits, bf16.logits, 1e-3));
  EXPECT_NEAR(gpu.loss, bf16.loss, 1e-4 * std::fabs(bf16.loss));
  EXPECT_GT(cosine(gpu.grads, bf16.grads), 0.9999);
  // Rounded like cpu-bf16, not fp32/TF32: much nearer to cpu-bf16 than cpu-bf16 is to fp32.
  EXPECT_LT(max_abs_diff(gpu.logits, bf16.logits), 0.25 * max_abs_diff(bf16.logits, f32.logits));
  EXPECT_LT(l2_diff(gpu.grads, bf16.grads), 0.25 * l2_diff(bf16.grads, f32.grads));
}

TEST_P(CudaModel, BitwiseReproducible) {
  const ModelConfig c = config();
  const StepResult a = precision_train_step(c, BackendKind::kCuda), b = precision_train_step(c, BackendKind::kCuda);
  EXPECT_EQ(std::memcmp(&a.loss, &b.loss, sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(a.logits.data(), b.logits.data(), a.logits.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(a.grads.data(), b.grads.data(), a.grads.size() * sizeof(float)), 0);
}

INSTANTIATE_TEST_SUITE_P(Models, CudaModel, ::testing::Bool(),
                         [](const auto& info) { return std::string(info.param ? "moe" : "dense"); });

}  // namespace
}  // namespace upcycle
