// The cpu-bf16 backend (CpuBackend(MatmulPrecision::kBF16)): its linear and grouped-linear ops must
// equal the ref oracle applied to bf16-rounded inputs (core/dtype.h's f32_to_bf16) within fp32
// accumulation error (1e-5 relative) — which fails if inputs are not rounded (error ~2⁻⁹), rounded
// the wrong way (truncation biases every product), or accumulated in bf16 — on sizes that cross the
// 64-row split and the 64-wide reduction padding, with empty groups; the same ops are within bf16
// error (1e-2) of plain fp32; the _f32 variants and every non-matmul op stay exact fp32; a whole
// dense and MoE model's loss and gradients stay close to fp32; results are bitwise reproducible.
#include <gtest/gtest.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/bf16_gemm.h"
#include "core/dtype.h"
#include "model/transformer.h"
#include "support/backend_test_support.h"
#include "support/model_test_support.h"
#include "support/precision_step_support.h"

namespace upcycle::backend {
namespace {

using test::all_close;
using test::random_floats;

constexpr double kAccumRtol = 1e-5;  // fp32 accumulation of exact bf16 products vs double
constexpr double kBf16Rtol = 1e-2;   // bf16 inputs (relative rounding 2⁻⁹) vs fp32 inputs

std::vector<float> bf16_rounded(const std::vector<float>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = bf16_to_f32(f32_to_bf16(v[i]));
  return out;
}

class Bf16Ops : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> ref_ = make_backend(BackendKind::kRef);
  std::unique_ptr<Backend> bf16_ = make_backend(BackendKind::kCpuBF16);
};

TEST(Bf16Rounding, VectorisedRowsEqualScalarConversion) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> in = {0.0f, -0.0f, 1.0f, inf, -inf, std::numeric_limits<float>::quiet_NaN(),
                           std::bit_cast<float>(0x7f800001u),  // signalling NaN must come out quiet
                           std::bit_cast<float>(0x3f808000u),  // tie, even below: stays 0x3f80
                           std::bit_cast<float>(0x3f818000u),  // tie, odd below: rounds up to 0x3f82
                           std::bit_cast<float>(0x3f808001u),  // just above a tie: rounds up
                           std::numeric_limits<float>::max(),  // rounds to +inf
                           std::numeric_limits<float>::denorm_min(), -1e-40f};
  const auto noise = random_floats(100, 1, 1e3f);
  in.insert(in.end(), noise.begin(), noise.end());
  // 3 rows of 37 used columns out of a stride of 40; output stride 38 (last column untouched).
  const int64_t rows = 3, cols = 37;
  in.resize(size_t(rows * 40), 2.5f);
  std::vector<uint16_t> out(size_t(rows * 38), 0xbeef);
  cpu_detail::round_rows_to_bf16(out.data(), 38, in.data(), 40, rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      EXPECT_EQ(out[size_t(r * 38 + c)], f32_to_bf16(in[size_t(r * 40 + c)])) << r << "," << c;
    EXPECT_EQ(out[size_t(r * 38 + 37)], 0xbeef);
  }
  EXPECT_EQ(out[7], 0x3f80);
  EXPECT_EQ(out[8], 0x3f82);
  EXPECT_EQ(out[9], 0x3f81);
}

// (M, K, N): single elements, K below / across the 64 padding, M across the 64-row split.
const std::vector<std::array<int64_t, 3>> kShapes = {
    {1, 1, 1}, {5, 7, 3}, {64, 64, 64}, {70, 67, 33}, {131, 130, 65}};

TEST_F(Bf16Ops, LinearEqualsRefOnRoundedInputs) {
  uint64_t seed = 10;
  for (auto [M, K, N] : kShapes) {
    SCOPED_TRACE("M=" + std::to_string(M) + " K=" + std::to_string(K) + " N=" + std::to_string(N));
    const auto x = random_floats(size_t(M * K), ++seed), w = random_floats(size_t(N * K), ++seed, 0.3f);
    const auto b = random_floats(size_t(N), ++seed), dy = random_floats(size_t(M * N), ++seed);
    const auto xr = bf16_rounded(x), wr = bf16_rounded(w), dyr = bf16_rounded(dy);
    std::vector<float> y(size_t(M * N), 9.0f), y_ref(y.size()), y_f32(y.size());
    bf16_->linear_forward(y.data(), x.data(), w.data(), b.data(), M, K, N);
    ref_->linear_forward(y_ref.data(), xr.data(), wr.data(), b.data(), M, K, N);  // bias is not rounded
    ref_->linear_forward(y_f32.data(), x.data(), w.data(), b.data(), M, K, N);
    EXPECT_TRUE(all_close(y, y_ref, kAccumRtol));
    EXPECT_TRUE(all_close(y, y_f32, kBf16Rtol));
    // Backward accumulates onto non-zero buffers; db sums the unrounded dy.
    const auto dx0 = random_floats(x.size(), ++seed), dw0 = random_floats(w.size(), ++seed);
    const auto db0 = random_floats(b.size(), ++seed);
    auto dx = dx0, dw = dw0, db = db0, dx_ref = dx0, dw_ref = dw0, db_ref = db0, dx_f32 = dx0, dw_f32 = dw0;
    bf16_->linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), M, K, N);
    ref_->linear_backward(dx_ref.data(), dw_ref.data(), nullptr, dyr.data(), xr.data(), wr.data(), M, K, N);
    ref_->linear_backward(nullptr, nullptr, db_ref.data(), dy.data(), x.data(), w.data(), M, K, N);
    ref_->linear_backward(dx_f32.data(), dw_f32.data(), nullptr, dy.data(), x.data(), w.data(), M, K, N);
    EXPECT_TRUE(all_close(dx, dx_ref, kAccumRtol));
    EXPECT_TRUE(all_close(dw, dw_ref, kAccumRtol));
    EXPECT_TRUE(all_close(db, db_ref, kAccumRtol));
    EXPECT_TRUE(all_close(dx, dx_f32, kBf16Rtol));
    EXPECT_TRUE(all_close(dw, dw_f32, kBf16Rtol));
  }
}

// The _f32 variants skip the rounding: they match the ref on the unrounded inputs at fp32 accuracy,
// which the bf16 path cannot (its error is ~2⁻⁹, far above 1e-5).
TEST_F(Bf16Ops, F32VariantsAreNotRounded) {
  const int64_t M = 70, K = 67, N = 5;
  const auto x = random_floats(size_t(M * K), 1), w = random_floats(size_t(N * K), 2);
  const auto dy = random_floats(size_t(M * N), 3);
  std::vector<float> y(size_t(M * N)), y_ref(y.size()), y_bf16(y.size());
  bf16_->linear_forward_f32(y.data(), x.data(), w.data(), nullptr, M, K, N);
  ref_->linear_forward(y_ref.data(), x.data(), w.data(), nullptr, M, K, N);
  bf16_->linear_forward(y_bf16.data(), x.data(), w.data(), nullptr, M, K, N);
  EXPECT_TRUE(all_close(y, y_ref, kAccumRtol));
  EXPECT_FALSE(all_close(y_bf16, y_ref, kAccumRtol));
  std::vector<float> dx(x.size()), dw(w.size()), dx_ref(x.size()), dw_ref(w.size());
  bf16_->linear_backward_f32(dx.data(), dw.data(), nullptr, dy.data(), x.data(), w.data(), M, K, N);
  ref_->linear_backward(dx_ref.data(), dw_ref.data(), nullptr, dy.data(), x.data(), w.data(), M, K, N);
  EXPECT_TRUE(all_close(dx, dx_ref, kAccumRtol));
  EXPECT_TRUE(all_close(dw, dw_ref, kAccumRtol));
}

TEST_F(Bf16Ops, GroupedLinearEqualsRefOnRoundedInputs) {
  // Empty groups first, in the middle and last; one group crosses the 64-row split, one has 1 row.
  const std::vector<int64_t> offsets = {0, 0, 70, 70, 71, 201, 201};
  const int64_t G = 6, A = offsets.back(), K = 67, N = 33;
  uint64_t seed = 40;
  const auto x = random_floats(size_t(A * K), ++seed), dy = random_floats(size_t(A * N), ++seed);
  const auto w_all = random_floats(size_t(G * N * K), ++seed, 0.3f);
  const auto xr = bf16_rounded(x), dyr = bf16_rounded(dy), wr_all = bf16_rounded(w_all);
  std::vector<const float*> w, wr;
  for (int64_t g = 0; g < G; ++g) w.push_back(w_all.data() + g * N * K), wr.push_back(wr_all.data() + g * N * K);
  std::vector<float> y(size_t(A * N), 5.0f), y_ref(y.size()), y_f32(y.size());
  bf16_->grouped_linear_forward(y.data(), x.data(), w.data(), offsets.data(), G, K, N);
  ref_->grouped_linear_forward(y_ref.data(), xr.data(), wr.data(), offsets.data(), G, K, N);
  ref_->grouped_linear_forward(y_f32.data(), x.data(), w.data(), offsets.data(), G, K, N);
  EXPECT_TRUE(all_close(y, y_ref, kAccumRtol));
  EXPECT_TRUE(all_close(y, y_f32, kBf16Rtol));

  const auto dx0 = random_floats(x.size(), ++seed), dw0 = random_floats(w_all.size(), ++seed);
  auto dx = dx0, dx_ref = dx0, dw = dw0, dw_ref = dw0;
  std::vector<float*> dw_p, dw_ref_p;
  for (int64_t g = 0; g < G; ++g) {
    const bool skip = g == 4;  // a null gradient slot: that expert's buffer must stay untouched
    dw_p.push_back(skip ? nullptr : dw.data() + g * N * K);
    dw_ref_p.push_back(skip ? nullptr : dw_ref.data() + g * N * K);
  }
  bf16_->grouped_linear_backward(dx.data(), dw_p.data(), dy.data(), x.data(), w.data(), offsets.data(), G, K, N);
  ref_->grouped_linear_backward(dx_ref.data(), dw_ref_p.data(), dyr.data(), xr.data(), wr.data(), offsets.data(), G,
                                K, N);
  EXPECT_TRUE(all_close(dx, dx_ref, kAccumRtol));
  EXPECT_TRUE(all_close(dw, dw_ref, kAccumRtol));
  for (int64_t i = 4 * N * K; i < 5 * N * K; ++i) ASSERT_EQ(dw[size_t(i)], dw0[size_t(i)]);
}

// Two backends, two calls each, on sizes large enough that oneDNN splits the work over threads.
TEST_F(Bf16Ops, BitwiseReproducible) {
  const int64_t M = 300, K = 256, N = 320;
  const auto x = random_floats(size_t(M * K), 1), w = random_floats(size_t(N * K), 2);
  const auto dy = random_floats(size_t(M * N), 3);
  auto run = [&](Backend& be) {
    std::vector<float> y(size_t(M * N)), dx(x.size(), 0.0f), dw(w.size(), 0.0f);
    be.linear_forward(y.data(), x.data(), w.data(), nullptr, M, K, N);
    be.linear_backward(dx.data(), dw.data(), nullptr, dy.data(), x.data(), w.data(), M, K, N);
    y.insert(y.end(), dx.begin(), dx.end());
    y.insert(y.end(), dw.begin(), dw.end());
    return y;
  };
  auto other = make_backend(BackendKind::kCpuBF16);
  const auto first = run(*bf16_), second = run(*bf16_), third = run(*other);
  EXPECT_EQ(0, std::memcmp(first.data(), second.data(), first.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(first.data(), third.data(), first.size() * sizeof(float)));
}

// Bf16Gemm::linear_backward rounds dy once for dx and dw where the packed layouts coincide (N a multiple
// of 64): it must give the bits of the two run() calls it replaces, with and without row padding of the
// shared dy (M = 100 pads to 128), and on the fallback (N = 100) and null-output paths.
TEST(Bf16Gemm, LinearBackwardEqualsTwoRunsBitwise) {
  using cpu_detail::Accumulate;
  using cpu_detail::Transpose;
  for (const auto [M, K, N] : {std::array<int64_t, 3>{100, 40, 128}, {128, 64, 192}, {100, 72, 100}}) {
    const auto x = random_floats(size_t(M * K), 4), w = random_floats(size_t(N * K), 5);
    const auto dy = random_floats(size_t(M * N), 6);
    const auto dx0 = random_floats(x.size(), 7), dw0 = random_floats(w.size(), 8);  // outputs accumulate
    cpu_detail::Bf16Gemm two, one;
    std::vector<float> dx_two = dx0, dw_two = dw0, dx_one = dx0, dw_one = dw0, dw_only = dw0;
    two.run(Transpose::kNo, Transpose::kNo, M, K, N, dy.data(), N, w.data(), K, Accumulate::kAdd, dx_two.data(), K);
    two.run(Transpose::kYes, Transpose::kNo, N, K, M, dy.data(), N, x.data(), K, Accumulate::kAdd, dw_two.data(), K);
    one.linear_backward(dx_one.data(), dw_one.data(), dy.data(), x.data(), w.data(), M, K, N);
    one.linear_backward(nullptr, dw_only.data(), dy.data(), x.data(), w.data(), M, K, N);
    EXPECT_EQ(0, std::memcmp(dx_two.data(), dx_one.data(), dx_two.size() * sizeof(float))) << M << " " << N;
    EXPECT_EQ(0, std::memcmp(dw_two.data(), dw_one.data(), dw_two.size() * sizeof(float))) << M << " " << N;
    EXPECT_EQ(0, std::memcmp(dw_two.data(), dw_only.data(), dw_two.size() * sizeof(float))) << M << " " << N;
  }
}

// --- whole model: loss and gradients of cpu-bf16 against cpu (fp32) ---

TEST(Bf16Model, LossAndGradientsCloseToF32) {
  for (const ModelConfig& config : {test::precision_dense_config(), test::precision_moe_config()}) {
    SCOPED_TRACE(config.is_moe() ? "moe" : "dense");
    const test::PrecisionStep f32 = test::precision_train_step(config, BackendKind::kCpu),
                              bf16 = test::precision_train_step(config, BackendKind::kCpuBF16);
    EXPECT_NEAR(bf16.loss, f32.loss, 1e-2 * std::fabs(f32.loss));
    EXPECT_NE(bf16.loss, f32.loss) << "the bf16 path did not change anything";
    const std::span<const float> all_f32(f32.grads), all_bf16(bf16.grads);
    for (size_t i = 0; i < f32.grad_ranges.size(); ++i) {
      const auto [offset, size] = f32.grad_ranges[i];
      EXPECT_GT(test::cosine(all_bf16.subspan(offset, size), all_f32.subspan(offset, size)), 0.99) << "tensor " << i;
    }
    EXPECT_GT(test::cosine(all_bf16, all_f32), 0.999);
    // Determinism: a fresh backend and model give the same bits.
    const test::PrecisionStep again = test::precision_train_step(config, BackendKind::kCpuBF16);
    EXPECT_EQ(0, std::memcmp(&again.loss, &bf16.loss, sizeof(double)));
    EXPECT_EQ(0, std::memcmp(again.grads.data(), bf16.grads.data(), bf16.grads.size() * sizeof(float)));
  }
}

}  // namespace
}  // namespace upcycle::backend
