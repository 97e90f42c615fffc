// The MoE backend ops (softmax_rows, gather/scatter rows, grouped linear): hand cases, cpu against the
// ref oracle on awkward sizes (D past one 64-column block, empty groups at either end and in the
// middle, repeated destination rows, null gradient slots). Backward ops run on non-zero buffers so += is
// checked too. Tolerance: 1e-5 relative (see all_close) for cpu vs ref. The backwards against finite
// differences (in double) are in moe_backend_grad_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "backend/backend.h"
#include "support/backend_test_support.h"

namespace upcycle::backend {
namespace {

using test::all_close;
using test::random_floats;

constexpr double kRtol = 1e-5;

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

INSTANTIATE_TEST_SUITE_P(Backends, MoeBackendOps, ::testing::Values(BackendKind::kRef, BackendKind::kCpu),
                         [](const auto& info) { return info.param == BackendKind::kRef ? "ref" : "cpu"; });

class MoeBackendOpVsRef : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> ref_ = make_backend(BackendKind::kRef);
  std::unique_ptr<Backend> cpu_ = make_backend(BackendKind::kCpu);
};

TEST_F(MoeBackendOpVsRef, SoftmaxRows) {
  uint64_t seed = 100;
  for (int64_t E : {1, 7, 130}) {
    const int64_t T = 13;
    SCOPED_TRACE("E=" + std::to_string(E));
    const auto logits = random_floats(size_t(T * E), ++seed, 8.0f), dp = random_floats(size_t(T * E), ++seed);
    std::vector<float> p_ref(logits.size(), 7.0f), p_cpu(logits.size(), -7.0f);
    ref_->softmax_rows(p_ref.data(), logits.data(), T, E);
    cpu_->softmax_rows(p_cpu.data(), logits.data(), T, E);
    EXPECT_TRUE(all_close(p_cpu, p_ref, kRtol));
    auto dl_ref = random_floats(logits.size(), ++seed), dl_cpu = dl_ref;
    ref_->softmax_rows_backward(dl_ref.data(), dp.data(), p_ref.data(), T, E);
    cpu_->softmax_rows_backward(dl_cpu.data(), dp.data(), p_ref.data(), T, E);
    EXPECT_TRUE(all_close(dl_cpu, dl_ref, kRtol));
  }
}

TEST_F(MoeBackendOpVsRef, GatherScatterRows) {
  uint64_t seed = 200;
  for (int64_t D : {1, 7, 130}) {
    const int64_t T = 9, A = 23;
    SCOPED_TRACE("D=" + std::to_string(D));
    std::vector<int32_t> rows(static_cast<size_t>(A));
    for (int64_t a = 0; a < A; ++a) rows[size_t(a)] = int32_t((a * 5 + a / 3) % (T - 1));  // row T−1 never hit
    const auto x = random_floats(size_t(T * D), ++seed), xa = random_floats(size_t(A * D), ++seed);
    const auto w = random_floats(size_t(A), ++seed), dy = random_floats(size_t(T * D), ++seed);
    std::vector<float> g_ref(size_t(A * D)), g_cpu(g_ref.size(), 3.0f);
    ref_->gather_rows(g_ref.data(), x.data(), rows.data(), A, T, D);
    cpu_->gather_rows(g_cpu.data(), x.data(), rows.data(), A, T, D);
    EXPECT_EQ(g_cpu, g_ref);
    for (const float* weights : {w.data(), static_cast<const float*>(nullptr)}) {
      auto y_ref = random_floats(size_t(T * D), ++seed), y_cpu = y_ref;
      ref_->scatter_add_rows(y_ref.data(), xa.data(), rows.data(), weights, A, T, D);
      cpu_->scatter_add_rows(y_cpu.data(), xa.data(), rows.data(), weights, A, T, D);
      EXPECT_TRUE(all_close(y_cpu, y_ref, kRtol));
      auto dx_ref = random_floats(xa.size(), ++seed), dw_ref = random_floats(size_t(A), ++seed);
      auto dx_cpu = dx_ref, dw_cpu = dw_ref;
      ref_->scatter_add_rows_backward(dx_ref.data(), dw_ref.data(), dy.data(), xa.data(), rows.data(), weights, A,
                                      T, D);
      cpu_->scatter_add_rows_backward(dx_cpu.data(), dw_cpu.data(), dy.data(), xa.data(), rows.data(), weights, A,
                                      T, D);
      EXPECT_TRUE(all_close(dx_cpu, dx_ref, kRtol));
      EXPECT_TRUE(all_close(dw_cpu, dw_ref, kRtol));
    }
  }
}

TEST_F(MoeBackendOpVsRef, GroupedLinear) {
  // Empty groups first, in the middle and last; a single-row group; one big group.
  const std::vector<int64_t> offsets = {0, 0, 1, 1, 34, 41, 41};
  const int64_t G = int64_t(offsets.size()) - 1, A = offsets.back();
  uint64_t seed = 300;
  struct Dims { int64_t K, N; };
  for (Dims d : {Dims{1, 1}, Dims{7, 33}, Dims{33, 7}, Dims{130, 13}}) {
    SCOPED_TRACE("K=" + std::to_string(d.K) + " N=" + std::to_string(d.N));
    const auto x = random_floats(size_t(A * d.K), ++seed), w = random_floats(size_t(G * d.N * d.K), ++seed);
    const auto dy = random_floats(size_t(A * d.N), ++seed);
    const auto w_g = group_ptrs(w, G, d.N * d.K);
    std::vector<float> y_ref(size_t(A * d.N), 5.0f), y_cpu(y_ref.size(), -5.0f);
    ref_->grouped_linear_forward(y_ref.data(), x.data(), w_g.data(), offsets.data(), G, d.K, d.N);
    cpu_->grouped_linear_forward(y_cpu.data(), x.data(), w_g.data(), offsets.data(), G, d.K, d.N);
    EXPECT_TRUE(all_close(y_cpu, y_ref, kRtol));

    auto dx_ref = random_floats(x.size(), ++seed), dw_ref = random_floats(w.size(), ++seed);
    auto dx_cpu = dx_ref, dw_cpu = dw_ref;
    auto dw_ref_g = group_ptrs(dw_ref, G, d.N * d.K), dw_cpu_g = group_ptrs(dw_cpu, G, d.N * d.K);
    dw_ref_g[4] = dw_cpu_g[4] = nullptr;  // a skipped gradient slot
    const std::vector<float> dw_before = dw_ref;
    ref_->grouped_linear_backward(dx_ref.data(), dw_ref_g.data(), dy.data(), x.data(), w_g.data(), offsets.data(), G,
                                  d.K, d.N);
    cpu_->grouped_linear_backward(dx_cpu.data(), dw_cpu_g.data(), dy.data(), x.data(), w_g.data(), offsets.data(), G,
                                  d.K, d.N);
    EXPECT_TRUE(all_close(dx_cpu, dx_ref, kRtol));
    EXPECT_TRUE(all_close(dw_cpu, dw_ref, kRtol));
    // Empty groups (0, 2, 5) and the null slot (4) are untouched.
    for (int64_t g : {0, 2, 4, 5}) {
      for (int64_t i = g * d.N * d.K; i < (g + 1) * d.N * d.K; ++i) {
        ASSERT_EQ(dw_cpu[size_t(i)], dw_before[size_t(i)]) << "group " << g;
        ASSERT_EQ(dw_ref[size_t(i)], dw_before[size_t(i)]) << "group " << g;
      }
    }
  }
}

TEST_F(MoeBackendOpVsRef, CpuScatterIsBitwiseDeterministic) {
  const int64_t T = 5, A = 400, D = 200;
  std::vector<int32_t> rows(static_cast<size_t>(A));
  for (int64_t a = 0; a < A; ++a) rows[size_t(a)] = int32_t((a * 7) % T);
  const auto x = random_floats(size_t(A * D), 1), w = random_floats(size_t(A), 2);
  std::vector<float> y1(size_t(T * D), 0.0f), y2 = y1;
  cpu_->scatter_add_rows(y1.data(), x.data(), rows.data(), w.data(), A, T, D);
  cpu_->scatter_add_rows(y2.data(), x.data(), rows.data(), w.data(), A, T, D);
  EXPECT_EQ(y1, y2);
}

}  // namespace
}  // namespace upcycle::backend
