// RoPE inverse frequencies against values computed here by hand: default (theta^(−2i/S)), linear
// (divided by the factor), llama3 (Llama 3.1's wavelength bands, from an independent formula and
// from Llama-3.1-8B's published parameters); unsupported types and bad llama3 parameters are Errors.
#include <gtest/gtest.h>

#include <cmath>

#include "model/rope.h"
#include "support/expect_error.h"
#include "support/model_test_support.h"

namespace upcycle::model {
namespace {

TEST(ModelRope, DefaultMatchesHandValues) {
  RopeConfig rope;
  rope.theta = 10000.0;
  auto f = rope_inv_freq(rope, 8, "config.json");
  ASSERT_EQ(f.size(), 4u);
  // 10000^(−0/8), 10000^(−2/8), 10000^(−4/8), 10000^(−6/8)
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[1], 0.1f);
  EXPECT_FLOAT_EQ(f[2], 0.01f);
  EXPECT_FLOAT_EQ(f[3], 0.001f);
}

TEST(ModelRope, DefaultUsesTheta) {
  RopeConfig rope;
  rope.theta = 1e6;
  auto f = rope_inv_freq(rope, 4, "config.json");
  ASSERT_EQ(f.size(), 2u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[1], 1e-3f);  // (1e6)^(−2/4)
}

TEST(ModelRope, LinearDividesByFactor) {
  RopeConfig rope;
  rope.type = "linear";
  rope.factor = 4.0;
  auto f = rope_inv_freq(rope, 8, "config.json");
  ASSERT_EQ(f.size(), 4u);
  EXPECT_FLOAT_EQ(f[0], 0.25f);
  EXPECT_FLOAT_EQ(f[1], 0.025f);
  EXPECT_FLOAT_EQ(f[2], 0.0025f);
  EXPECT_FLOAT_EQ(f[3], 0.00025f);
}

// Llama-3.1-8B's rope: theta 5e5, factor 8, low 1, high 4, original context 8192, head_dim 128.
TEST(ModelRope, Llama3MatchesIndependentReferenceOnLlama31) {
  RopeConfig rope;
  rope.type = "llama3";
  rope.theta = 500000.0;
  rope.factor = 8.0;
  rope.low_freq_factor = 1.0;
  rope.high_freq_factor = 4.0;
  rope.original_max_position_embeddings = 8192;
  auto f = rope_inv_freq(rope, 128, "config.json");
  auto want = test::llama3_inv_freq_reference(500000.0, 128, 8.0, 1.0, 4.0, 8192.0);
  ASSERT_EQ(f.size(), want.size());
  int kept = 0, divided = 0, blended = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    EXPECT_EQ(f[i], float(want[i])) << "i=" << i;
    const double base = std::pow(500000.0, -double(2 * i) / 128.0);
    kept += f[i] == float(base);
    divided += f[i] == float(base / 8.0);
  }
  blended = int(f.size()) - kept - divided;
  // All three bands occur for these parameters (wavelengths span 2π … ~3e6 around 2048…8192).
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
}

TEST(ModelRope, Llama3HandComputedBlend) {
  // S=4, theta=100: base freqs 1 and 0.1 → wavelengths 2π ≈ 6.283 and 20π ≈ 62.83.
  // original 32, low 1, high 8: bands < 4 kept, > 32 divided, between blended. 6.283 is blended with
  // s = (32/6.283 − 1)/7, 62.83 > 32 is divided by the factor 2.
  RopeConfig rope;
  rope.type = "llama3";
  rope.theta = 100.0;
  rope.factor = 2.0;
  rope.low_freq_factor = 1.0;
  rope.high_freq_factor = 8.0;
  rope.original_max_position_embeddings = 32;
  auto f = rope_inv_freq(rope, 4, "config.json");
  ASSERT_EQ(f.size(), 2u);
  const double s = (32.0 / (2 * M_PI) - 1.0) / 7.0;
  EXPECT_FLOAT_EQ(f[0], float((1 - s) * 1.0 / 2.0 + s * 1.0));
  EXPECT_FLOAT_EQ(f[1], 0.05f);
}

TEST(ModelRope, UnsupportedTypeNamesTypeAndConfig) {
  RopeConfig rope;
  rope.type = "yarn";
  EXPECT_UPCYCLE_ERROR(rope_inv_freq(rope, 8, "m/config.json"), "rope type 'yarn'", "m/config.json");
}

TEST(ModelRope, Llama3BadParametersAreErrors) {
  RopeConfig rope;
  rope.type = "llama3";
  rope.low_freq_factor = 4.0;
  rope.high_freq_factor = 4.0;  // would divide by zero
  rope.original_max_position_embeddings = 8192;
  EXPECT_UPCYCLE_ERROR(rope_inv_freq(rope, 8, "config.json"), "low_freq_factor < high_freq_factor", "config.json");
  RopeConfig odd;
  EXPECT_UPCYCLE_ERROR(rope_inv_freq(odd, 5, "config.json"), "must be positive and even", "config.json");
}

}  // namespace
}  // namespace upcycle::model
