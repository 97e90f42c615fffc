// cpu backend against the ref oracle on random inputs of awkward sizes (1, 7, 33, 130; token counts
// that are multiples of nothing; GQA with H=6, KV=2, S=10; windows 0 and 3; two sequences), plus
// bitwise determinism of the cpu backend and backend selection by name. Backward ops are called on
// non-zero gradient buffers so the accumulate (+=) contract is compared too. Tolerance: 1e-5 relative
// to each tensor's largest value (see all_close), fp32 kernels vs double-accumulated reference.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "support/backend_test_support.h"
#include "support/expect_error.h"

namespace upcycle::backend {
namespace {

using test::all_close;
using test::random_floats;

constexpr double kRtol = 1e-5;

class BackendOpVsRef : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> ref_ = make_backend(BackendKind::kRef);
  std::unique_ptr<Backend> cpu_ = make_backend(BackendKind::kCpu);
};

TEST_F(BackendOpVsRef, Linear) {
  struct Dims { int64_t M, K, N; };
  uint64_t seed = 1;
  for (Dims d : {Dims{1, 1, 1}, Dims{7, 33, 130}, Dims{130, 7, 33}, Dims{33, 130, 7}, Dims{1, 130, 33}}) {
    for (bool bias : {false, true}) {
      SCOPED_TRACE("M=" + std::to_string(d.M) + " K=" + std::to_string(d.K) + " N=" + std::to_string(d.N) +
                   " bias=" + std::to_string(bias));
      const auto x = random_floats(size_t(d.M * d.K), ++seed), w = random_floats(size_t(d.N * d.K), ++seed);
      const auto b = random_floats(size_t(d.N), ++seed), dy = random_floats(size_t(d.M * d.N), ++seed);
      std::vector<float> y_ref(size_t(d.M * d.N), 9.0f), y_cpu(y_ref.size(), -9.0f);
      ref_->linear_forward(y_ref.data(), x.data(), w.data(), bias ? b.data() : nullptr, d.M, d.K, d.N);
      cpu_->linear_forward(y_cpu.data(), x.data(), w.data(), bias ? b.data() : nullptr, d.M, d.K, d.N);
      EXPECT_TRUE(all_close(y_cpu, y_ref, kRtol));

      auto dx_ref = random_floats(x.size(), ++seed), dw_ref = random_floats(w.size(), ++seed);
      auto db_ref = random_floats(b.size(), ++seed);
      auto dx_cpu = dx_ref, dw_cpu = dw_ref, db_cpu = db_ref;
      ref_->linear_backward(dx_ref.data(), dw_ref.data(), db_ref.data(), dy.data(), x.data(), w.data(), d.M, d.K, d.N);
      cpu_->linear_backward(dx_cpu.data(), dw_cpu.data(), db_cpu.data(), dy.data(), x.data(), w.data(), d.M, d.K, d.N);
      EXPECT_TRUE(all_close(dx_cpu, dx_ref, kRtol));
      EXPECT_TRUE(all_close(dw_cpu, dw_ref, kRtol));
      EXPECT_TRUE(all_close(db_cpu, db_ref, kRtol));
    }
  }
}

TEST_F(BackendOpVsRef, LinearSkipsNullGradients) {
  const int64_t M = 7, K = 33, N = 13;
  const auto x = random_floats(size_t(M * K), 1), w = random_floats(size_t(N * K), 2);
  const auto dy = random_floats(size_t(M * N), 3);
  for (Backend* be : {ref_.get(), cpu_.get()}) {
    std::vector<float> dx(x.size(), 0.0f), dx_alone(x.size(), 0.0f), dw(w.size(), 0.0f), db(size_t(N), 0.0f);
    be->linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), M, K, N);
    be->linear_backward(dx_alone.data(), nullptr, nullptr, dy.data(), x.data(), w.data(), M, K, N);
    EXPECT_EQ(dx, dx_alone) << be->name();
    std::vector<float> dw_alone(w.size(), 0.0f);
    be->linear_backward(nullptr, dw_alone.data(), nullptr, dy.data(), x.data(), w.data(), M, K, N);
    EXPECT_EQ(dw, dw_alone) << be->name();
  }
}

TEST_F(BackendOpVsRef, RmsNorm) {
  uint64_t seed = 100;
  for (int64_t D : {1, 7, 130}) {
    const int64_t T = 13;
    SCOPED_TRACE("D=" + std::to_string(D));
    const auto x = random_floats(size_t(T * D), ++seed, 3.0f), w = random_floats(size_t(D), ++seed);
    const auto dy = random_floats(x.size(), ++seed);
    std::vector<float> y_ref(x.size()), y_cpu(x.size()), r_ref(static_cast<size_t>(T)), r_cpu(static_cast<size_t>(T));
    ref_->rmsnorm_forward(y_ref.data(), r_ref.data(), x.data(), w.data(), T, D, 1e-5f);
    cpu_->rmsnorm_forward(y_cpu.data(), r_cpu.data(), x.data(), w.data(), T, D, 1e-5f);
    EXPECT_TRUE(all_close(y_cpu, y_ref, kRtol));
    EXPECT_TRUE(all_close(r_cpu, r_ref, kRtol));

    auto dx_ref = random_floats(x.size(), ++seed), dw_ref = random_floats(w.size(), ++seed);
    auto dx_cpu = dx_ref, dw_cpu = dw_ref;
    ref_->rmsnorm_backward(dx_ref.data(), dw_ref.data(), dy.data(), x.data(), w.data(), r_ref.data(), T, D);
    cpu_->rmsnorm_backward(dx_cpu.data(), dw_cpu.data(), dy.data(), x.data(), w.data(), r_ref.data(), T, D);
    EXPECT_TRUE(all_close(dx_cpu, dx_ref, kRtol));
    EXPECT_TRUE(all_close(dw_cpu, dw_ref, kRtol));
  }
}

TEST_F(BackendOpVsRef, Rope) {
  const int64_t seq_len = 11, T = 2 * seq_len, H = 6, S = 10;
  const auto inv_freq = test::rope_inv_freq(S);
  const auto x = random_floats(size_t(T * H * S), 200);
  for (int64_t offset : {0, 5, 4093}) {
    for (RopeDirection direction : {RopeDirection::kForward, RopeDirection::kInverse}) {
      SCOPED_TRACE("offset=" + std::to_string(offset) + (direction == RopeDirection::kInverse ? " inverse" : " forward"));
      auto x_ref = x, x_cpu = x;
      ref_->rope(x_ref.data(), inv_freq.data(), T, seq_len, H, S, offset, direction);
      cpu_->rope(x_cpu.data(), inv_freq.data(), T, seq_len, H, S, offset, direction);
      EXPECT_TRUE(all_close(x_cpu, x_ref, kRtol));
    }
  }
}

void compare_attention(Backend& ref, Backend& cpu, const AttentionShape& sh, uint64_t seed) {
  const int64_t T = sh.batch * sh.seq_len;
  const auto q = random_floats(size_t(T * sh.heads * sh.head_dim), seed, 2.0f);
  const auto k = random_floats(size_t(T * sh.kv_heads * sh.head_dim), seed + 1, 2.0f);
  const auto v = random_floats(k.size(), seed + 2);
  const auto dout = random_floats(q.size(), seed + 3);
  std::vector<float> out_ref(q.size()), out_cpu(q.size()), lse_ref(size_t(T * sh.heads)), lse_cpu(lse_ref.size());
  ref.attention_forward(out_ref.data(), lse_ref.data(), q.data(), k.data(), v.data(), sh);
  cpu.attention_forward(out_cpu.data(), lse_cpu.data(), q.data(), k.data(), v.data(), sh);
  EXPECT_TRUE(all_close(out_cpu, out_ref, kRtol));
  EXPECT_TRUE(all_close(lse_cpu, lse_ref, kRtol));

  auto dq_ref = random_floats(q.size(), seed + 4), dk_ref = random_floats(k.size(), seed + 5);
  auto dv_ref = random_floats(v.size(), seed + 6);
  auto dq_cpu = dq_ref, dk_cpu = dk_ref, dv_cpu = dv_ref;
  ref.attention_backward(dq_ref.data(), dk_ref.data(), dv_ref.data(), dout.data(), q.data(), k.data(), v.data(),
                         out_ref.data(), lse_ref.data(), sh);
  cpu.attention_backward(dq_cpu.data(), dk_cpu.data(), dv_cpu.data(), dout.data(), q.data(), k.data(), v.data(),
                         out_ref.data(), lse_ref.data(), sh);
  EXPECT_TRUE(all_close(dq_cpu, dq_ref, kRtol));
  EXPECT_TRUE(all_close(dk_cpu, dk_ref, kRtol));
  EXPECT_TRUE(all_close(dv_cpu, dv_ref, kRtol));
}

TEST_F(BackendOpVsRef, Attention) {
  uint64_t seed = 300;
  for (int64_t kv_heads : {2, 6, 1}) {
    for (int64_t window : {0, 3, 1, 50}) {
      SCOPED_TRACE("KV=" + std::to_string(kv_heads) + " window=" + std::to_string(window));
      AttentionShape sh{.batch = 2, .seq_len = 11, .heads = 6, .kv_heads = kv_heads, .head_dim = 10,
                        .window = window, .scale = 1.0f / std::sqrt(10.0f)};
      compare_attention(*ref_, *cpu_, sh, seed += 10);
    }
  }
}

// Sequences longer than the cpu backward's 64-row tile, with lengths and windows that are not
// multiples of it, so masking at tile edges and windows reaching into earlier tiles are exercised.
TEST_F(BackendOpVsRef, AttentionAcrossTiles) {
  uint64_t seed = 700;
  for (int64_t window : {0, 70, 5}) {
    SCOPED_TRACE("window=" + std::to_string(window));
    AttentionShape sh{.batch = 1, .seq_len = 150, .heads = 4, .kv_heads = 2, .head_dim = 8, .window = window,
                      .scale = 1.0f / std::sqrt(8.0f)};
    compare_attention(*ref_, *cpu_, sh, seed += 10);
  }
}

TEST_F(BackendOpVsRef, SwiGlu) {
  const int64_t n = 1031;
  auto g = random_floats(size_t(n), 400, 4.0f);
  g[0] = 0.0f, g[1] = 90.0f, g[2] = -90.0f, g[3] = 200.0f, g[4] = -200.0f;  // exp over/underflow in fp32
  const auto u = random_floats(size_t(n), 401), dh = random_floats(size_t(n), 402);
  std::vector<float> h_ref(static_cast<size_t>(n)), h_cpu(static_cast<size_t>(n));
  ref_->swiglu_forward(h_ref.data(), g.data(), u.data(), n);
  cpu_->swiglu_forward(h_cpu.data(), g.data(), u.data(), n);
  EXPECT_TRUE(all_close(h_cpu, h_ref, kRtol));
  auto dg_ref = random_floats(size_t(n), 403), du_ref = random_floats(size_t(n), 404);
  auto dg_cpu = dg_ref, du_cpu = du_ref;
  ref_->swiglu_backward(dg_ref.data(), du_ref.data(), dh.data(), g.data(), u.data(), n);
  cpu_->swiglu_backward(dg_cpu.data(), du_cpu.data(), dh.data(), g.data(), u.data(), n);
  EXPECT_TRUE(all_close(dg_cpu, dg_ref, kRtol));
  EXPECT_TRUE(all_close(du_cpu, du_ref, kRtol));
}

TEST_F(BackendOpVsRef, Embedding) {
  const int64_t rows = 9, T = 23, D = 130;
  std::vector<int32_t> ids(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) ids[size_t(t)] = int32_t((t * 5 + t / 4) % rows);  // repeats, row 9-1 used
  const auto table = random_floats(size_t(rows * D), 500), dx = random_floats(size_t(T * D), 501);
  std::vector<float> x_ref(size_t(T * D)), x_cpu(x_ref.size());
  ref_->embedding_forward(x_ref.data(), table.data(), ids.data(), T, D);
  cpu_->embedding_forward(x_cpu.data(), table.data(), ids.data(), T, D);
  EXPECT_EQ(x_cpu, x_ref);  // a copy: exact
  auto dt_ref = random_floats(table.size(), 502);
  auto dt_cpu = dt_ref;
  const int64_t V = int64_t(table.size()) / D;
  ref_->scatter_add_rows(dt_ref.data(), dx.data(), ids.data(), nullptr, T, V, D);
  cpu_->scatter_add_rows(dt_cpu.data(), dx.data(), ids.data(), nullptr, T, V, D);
  EXPECT_TRUE(all_close(dt_cpu, dt_ref, kRtol));
}

TEST_F(BackendOpVsRef, CrossEntropy) {
  const int64_t T = 13, V = 130;
  for (float logit_scale : {1.0f, 30.0f}) {  // 30: logits far beyond exp's fp32 range
    SCOPED_TRACE("logit scale " + std::to_string(logit_scale));
    const auto logits = random_floats(size_t(T * V), 600, logit_scale);
    std::vector<int32_t> targets(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) targets[size_t(t)] = t % 4 == 1 ? -100 : int32_t((t * 37) % V);
    std::vector<float> dl_ref(logits.size(), 5.0f), dl_cpu(logits.size(), -5.0f);
    const double loss_ref = ref_->cross_entropy(dl_ref.data(), logits.data(), targets.data(), T, V, 0.7f);
    const double loss_cpu = cpu_->cross_entropy(dl_cpu.data(), logits.data(), targets.data(), T, V, 0.7f);
    EXPECT_NEAR(loss_cpu, loss_ref, kRtol * std::fabs(loss_ref));
    EXPECT_TRUE(all_close(dl_cpu, dl_ref, kRtol));
  }
}

TEST_F(BackendOpVsRef, Axpy) {
  const auto x = random_floats(1031, 700);
  auto y_ref = random_floats(1031, 701);
  auto y_cpu = y_ref;
  ref_->axpy(y_ref.data(), x.data(), -0.37f, 1031);
  cpu_->axpy(y_cpu.data(), x.data(), -0.37f, 1031);
  EXPECT_TRUE(all_close(y_cpu, y_ref, kRtol));
}

// Every cpu op twice on the same inputs: the outputs must agree bit for bit (fixed thread count).
TEST(BackendOpDeterminism, CpuBitwiseRepeatable) {
  auto run_all = [](std::vector<std::vector<float>>& results, double& loss) {
    auto be = make_backend(BackendKind::kCpu);
    const int64_t M = 130, K = 257, N = 190, B = 2, Tseq = 37, H = 6, KV = 2, S = 16, V = 301;
    const int64_t T = B * Tseq;
    const auto x = random_floats(size_t(M * K), 1), w = random_floats(size_t(N * K), 2);
    const auto dy = random_floats(size_t(M * N), 3);
    std::vector<float> y(size_t(M * N)), dx(x.size()), dw(w.size()), db(static_cast<size_t>(N));
    be->linear_forward(y.data(), x.data(), w.data(), dy.data(), M, K, N);
    be->linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), M, K, N);
    std::vector<float> yn(x.size()), rstd(static_cast<size_t>(M)), dxn(x.size()), dwn(static_cast<size_t>(K));
    be->rmsnorm_forward(yn.data(), rstd.data(), x.data(), w.data(), M, K, 1e-6f);
    be->rmsnorm_backward(dxn.data(), dwn.data(), x.data(), x.data(), w.data(), rstd.data(), M, K);
    auto q = random_floats(size_t(T * H * S), 4), k = random_floats(size_t(T * KV * S), 5);
    const auto v = random_floats(k.size(), 6);
    const auto inv_freq = test::rope_inv_freq(S);
    be->rope(q.data(), inv_freq.data(), T, Tseq, H, S, 0, RopeDirection::kForward);
    be->rope(k.data(), inv_freq.data(), T, Tseq, KV, S, 0, RopeDirection::kForward);
    const AttentionShape sh{B, Tseq, H, KV, S, 5, 0.25f};
    std::vector<float> out(q.size()), lse(size_t(T * H)), dq(q.size()), dk(k.size()), dv(v.size());
    be->attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), sh);
    be->attention_backward(dq.data(), dk.data(), dv.data(), q.data(), q.data(), k.data(), v.data(), out.data(),
                           lse.data(), sh);
    std::vector<float> h(x.size()), dg(x.size()), du(x.size());
    be->swiglu_forward(h.data(), x.data(), yn.data(), int64_t(x.size()));
    be->swiglu_backward(dg.data(), du.data(), h.data(), x.data(), yn.data(), int64_t(x.size()));
    std::vector<int32_t> ids(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) ids[size_t(t)] = int32_t(t % 7);
    std::vector<float> emb(size_t(T * K)), dtable(size_t(7 * K));
    be->embedding_forward(emb.data(), x.data(), ids.data(), T, K);
    be->scatter_add_rows(dtable.data(), x.data(), ids.data(), nullptr, T, 7, K);
    std::vector<float> dlogits(size_t(T * V));
    loss = be->cross_entropy(dlogits.data(), y.data(), ids.data(), T, V, 1.0f);
    be->axpy(dx.data(), dxn.data(), 0.5f, int64_t(dx.size()));
    results = {y, dx, dw, db, yn, rstd, dxn, dwn, q, k, out, lse, dq, dk, dv, h, dg, du, emb, dtable, dlogits};
  };
  std::vector<std::vector<float>> first, second;
  double loss1 = 0, loss2 = 0;
  run_all(first, loss1);
  run_all(second, loss2);
  ASSERT_EQ(first.size(), second.size());
  for (size_t i = 0; i < first.size(); ++i) {
    ASSERT_EQ(first[i].size(), second[i].size());
    EXPECT_EQ(0, std::memcmp(first[i].data(), second[i].data(), first[i].size() * sizeof(float))) << "result " << i;
  }
  EXPECT_EQ(0, std::memcmp(&loss1, &loss2, sizeof(double)));
}

TEST(BackendOpSelect, KindsAndNames) {
  EXPECT_EQ(backend_kind_from_name("ref"), BackendKind::kRef);
  EXPECT_EQ(backend_kind_from_name("cpu"), BackendKind::kCpu);
  EXPECT_EQ(make_backend(BackendKind::kRef)->name(), "ref");
  EXPECT_EQ(make_backend(BackendKind::kCpu)->name(), "cpu");
  EXPECT_EQ(backend_kind_from_name("cpu-bf16"), BackendKind::kCpuBF16);
  EXPECT_EQ(make_backend(BackendKind::kCpuBF16)->name(), "cpu-bf16");
  EXPECT_UPCYCLE_ERROR(backend_kind_from_name("cuda"), "unknown backend 'cuda' (choose cpu, cpu-bf16 or ref)", "");
  EXPECT_UPCYCLE_ERROR(backend_kind_from_name(""), "unknown backend ''", "");
}

// Every registry row round-trips: its name selects its kind and builds a backend reporting that name.
TEST(BackendOpSelect, RegistryRowsRoundTrip) {
  std::vector<std::string> seen;
  for (const BackendInfo& info : registered_backends()) {
    EXPECT_EQ(backend_kind_from_name(info.name), info.kind) << info.name;
    EXPECT_EQ(make_backend(info.kind)->name(), info.name);
    EXPECT_FALSE(info.summary.empty()) << info.name;
    seen.emplace_back(info.name);
  }
  EXPECT_EQ(seen, backend_names());
  EXPECT_EQ(seen, (std::vector<std::string>{"cpu", "cpu-bf16", "ref"}));
}

}  // namespace
}  // namespace upcycle::backend
