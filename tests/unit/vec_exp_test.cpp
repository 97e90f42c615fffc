// cpu_detail::vec_exp (the vectorisable exp behind the cpu softmax, SwiGLU and cross-entropy loops)
// against std::exp: ≤ 4 ulp-equivalent relative error over the normal range on a dense grid, exact 0
// and +inf where std::exp underflows/overflows, NaN in → NaN out. The op tests compare whole ops
// against the ref backend; this pins the function's own contract, including the edges those ops
// rely on (SwiGLU's σ(z) = 0 for z ≪ 0 needs exp → +inf, never NaN).
#include "backend/cpu/vec_exp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace upcycle::backend::cpu_detail {
namespace {

TEST(VecExp, MatchesStdExpOverTheNormalRange) {
  double worst = 0.0;
  for (float x = -87.0f; x < 88.5f; x += 1.0e-3f) {
    const double want = std::exp(double(x));
    worst = std::max(worst, std::fabs(double(vec_exp(x)) - want) / want);
  }
  EXPECT_LT(worst, 4.0 * std::numeric_limits<float>::epsilon()) << "max relative error " << worst;
}

TEST(VecExp, EdgesAsStdExp) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(vec_exp(0.0f), 1.0f);
  EXPECT_EQ(vec_exp(89.0f), inf);
  EXPECT_EQ(vec_exp(1.0e6f), inf);
  EXPECT_EQ(vec_exp(inf), inf);
  EXPECT_EQ(vec_exp(-105.0f), 0.0f);
  EXPECT_EQ(vec_exp(-inf), 0.0f);
  EXPECT_TRUE(std::isnan(vec_exp(std::numeric_limits<float>::quiet_NaN())));
  // Gradual underflow: a denormal result close to std::exp's.
  const float d = vec_exp(-100.0f), want = std::exp(-100.0f);
  EXPECT_GT(d, 0.0f);
  EXPECT_NEAR(d, want, want * 1e-3);
}

}  // namespace
}  // namespace upcycle::backend::cpu_detail
