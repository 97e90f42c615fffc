// The MoE backend ops (softmax_rows, gather/scatter rows, grouped linear): hand cases on every
// backend, grouped linear's skipped (empty, null) gradient slots, and the cpu scatter's bitwise
// determinism. Every backend against the ref oracle on awkward sizes (D past one 64-column block, empty
// groups at either end and in the middle, repeated destination rows) is the op-case table
// (backend_op_table_test.cpp); the backwards against finite differences (in double) are in
// moe_backend_grad_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "backend/backend.h"
#include "support/backend_test_support.h"

namespace upcycle::backend {
namespace {

using test::random_floats;

// Weight pointers of G experts packed in one buffer of [G, N, K].
std::vector<const float*> group_ptrs(const std::vector<float>& buf, int64_t G, int64_t per) {
  std::vector<const float*> p;
  for (int64_t g = 0; g < G; ++g) p.push_back(buf.data() + g * per);
  return p;
}
std::vector<float*> group_ptrs(std::vector<float>& buf, int64_t G, int64_t per) {
  std::vector<float*> p;
  for (int64_t g = 0; g < G; ++g) p.push_back(buf.data() + g * per);
  return p;
}

class MoeBackendOps : public ::testing::TestWithParam<BackendKind> {
 protected:
  std::unique_ptr<Backend> be_ = make_backend(GetParam());
};

TEST_P(MoeBackendOps, SoftmaxHandCases) {
  // ln 3 vs 0 → (1/4, 3/4); huge equal logits must not overflow; a gap of 100 gives ~0 and 1.
  const std::vector<float> logits = {0.0f, std::log(3.0f), 1e4f, 1e4f, -50.0f, 50.0f};
  std::vector<float> p(logits.size(), -1.0f);
  be_->softmax_rows(p.data(), logits.data(), 3, 2);
  EXPECT_NEAR(p[0], 0.25f, 1e-7);
  EXPECT_NEAR(p[1], 0.75f, 1e-7);
  EXPECT_FLOAT_EQ(p[2], 0.5f);
  EXPECT_FLOAT_EQ(p[3], 0.5f);
  EXPECT_NEAR(p[4], 0.0f, 1e-30);
  EXPECT_FLOAT_EQ(p[5], 1.0f);
  // dl = p ⊙ (dp − p·dp): with p = (1/4, 3/4), dp = (1, 0): p·dp = 1/4 → dl = (3/16, −3/16), added to 1.
  std::vector<float> dl = {1.0f, 1.0f}, dp = {1.0f, 0.0f};
  be_->softmax_rows_backward(dl.data(), dp.data(), p.data(), 1, 2);
  EXPECT_NEAR(dl[0], 1.0f + 3.0f / 16, 1e-6);
  EXPECT_NEAR(dl[1], 1.0f - 3.0f / 16, 1e-6);
}

TEST_P(MoeBackendOps, GatherScatterHandCases) {
  const std::vector<float> x = {1, 2, 10, 20, 100, 200};  // T=3, D=2
  const std::vector<int32_t> rows = {2, 0, 2};
  std::vector<float> g(6, -1.0f);
  be_->gather_rows(g.data(), x.data(), rows.data(), 3, 3, 2);
  EXPECT_EQ(g, (std::vector<float>{100, 200, 1, 2, 100, 200}));
  const std::vector<float> w = {1, 2, 3};
  std::vector<float> y = {1, 1, 1, 1, 1, 1};
  be_->scatter_add_rows(y.data(), g.data(), rows.data(), w.data(), 3, 3, 2);
  // row 0 += 2·(1,2); row 1 untouched; row 2 += 1·(100,200) + 3·(100,200)
  EXPECT_EQ(y, (std::vector<float>{3, 5, 1, 1, 401, 801}));
  std::vector<float> y_unweighted(6, 0.0f);
  be_->scatter_add_rows(y_unweighted.data(), g.data(), rows.data(), nullptr, 3, 3, 2);
  EXPECT_EQ(y_unweighted, (std::vector<float>{1, 2, 0, 0, 200, 400}));
  // backward: dx[a] += w_a·dy[rows[a]]; dw[a] += dy[rows[a]]·g[a]
  const std::vector<float> dy = {1, -1, 5, 5, 0.5f, 2};
  std::vector<float> dx(6, 0.0f), dw = {10, 10, 10};
  be_->scatter_add_rows_backward(dx.data(), dw.data(), dy.data(), g.data(), rows.data(), w.data(), 3, 3, 2);
  EXPECT_EQ(dx, (std::vector<float>{0.5f, 2, 2, -2, 1.5f, 6}));
  EXPECT_EQ(dw, (std::vector<float>{10 + 450, 10 - 1, 10 + 450}));
}

TEST_P(MoeBackendOps, GroupedLinearHandCase) {
  // Two groups, K = N = 2: group 0 (rows 0..1) swaps columns, group 1 (row 2) doubles them.
  const std::vector<float> w = {0, 1, 1, 0, 2, 0, 0, 2};
  const auto w_g = group_ptrs(w, 2, 4);
  const std::vector<int64_t> offsets = {0, 2, 3};
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  std::vector<float> y(6, -1.0f);
  be_->grouped_linear_forward(y.data(), x.data(), w_g.data(), offsets.data(), 2, 2, 2);
  EXPECT_EQ(y, (std::vector<float>{2, 1, 4, 3, 10, 12}));
}

INSTANTIATE_TEST_SUITE_P(Backends, MoeBackendOps, ::testing::ValuesIn(test::backend_kinds()),
                         test::BackendTestName());

// The empty groups (0, 2, 5) and the null gradient slot (4) of grouped_linear_backward are untouched.
TEST_P(MoeBackendOps, GroupedLinearBackwardSkipsEmptyGroupsAndNullSlots) {
  const std::vector<int64_t> offsets = {0, 0, 1, 1, 34, 41, 41};
  const int64_t G = int64_t(offsets.size()) - 1, A = offsets.back(), K = 7, N = 33;
  const auto x = random_floats(size_t(A * K), 1), w = random_floats(size_t(G * N * K), 2);
  const auto dy = random_floats(size_t(A * N), 3);
  std::vector<float> dx(x.size()), dw = random_floats(w.size(), 4);
  const std::vector<float> dw_before = dw;
  auto dw_g = group_ptrs(dw, G, N * K);
  dw_g[4] = nullptr;
  be_->grouped_linear_backward(dx.data(), dw_g.data(), dy.data(), x.data(), group_ptrs(w, G, N * K).data(),
                               offsets.data(), G, K, N);
  for (int64_t g : {0, 2, 4, 5})
    for (int64_t i = g * N * K; i < (g + 1) * N * K; ++i)
      ASSERT_EQ(dw[size_t(i)], dw_before[size_t(i)]) << "group " << g;
  EXPECT_NE(dw, dw_before);  // the non-empty groups did get gradients
}

TEST(MoeBackendOpDeterminism, CpuScatterIsBitwiseDeterministic) {
  auto cpu = make_backend(BackendKind::kCpu);
  const int64_t T = 5, A = 400, D = 200;
  std::vector<int32_t> rows(static_cast<size_t>(A));
  for (int64_t a = 0; a < A; ++a) rows[size_t(a)] = int32_t((a * 7) % T);
  const auto x = random_floats(size_t(A * D), 1), w = random_floats(size_t(A), 2);
  std::vector<float> y1(size_t(T * D), 0.0f), y2 = y1;
  cpu->scatter_add_rows(y1.data(), x.data(), rows.data(), w.data(), A, T, D);
  cpu->scatter_add_rows(y2.data(), x.data(), rows.data(), w.data(), A, T, D);
  EXPECT_EQ(y1, y2);
}

}  // namespace
}  // namespace upcycle::backend
