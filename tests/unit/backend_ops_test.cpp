// Null gradient slots on every backend, bitwise determinism of the cpu backend and backend selection
// by name. Every backend against the ref oracle on awkward sizes is the op-case table
// (backend_op_table_test.cpp).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "support/backend_test_support.h"
#include "support/expect_error.h"

namespace upcycle::backend {
namespace {

using test::random_floats;

// A null gradient pointer skips that gradient and leaves the others exactly as when all are computed.
class BackendOps : public ::testing::TestWithParam<BackendKind> {
 protected:
  std::unique_ptr<Backend> be_ = make_backend(GetParam());
};

TEST_P(BackendOps, LinearSkipsNullGradients) {
  const int64_t M = 7, K = 33, N = 13;
  const auto x = random_floats(size_t(M * K), 1), w = random_floats(size_t(N * K), 2);
  const auto dy = random_floats(size_t(M * N), 3);
  std::vector<float> dx(x.size(), 0.0f), dx_alone(x.size(), 0.0f), dw(w.size(), 0.0f), db(size_t(N), 0.0f);
  be_->linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), M, K, N);
  be_->linear_backward(dx_alone.data(), nullptr, nullptr, dy.data(), x.data(), w.data(), M, K, N);
  EXPECT_EQ(dx, dx_alone);
  std::vector<float> dw_alone(w.size(), 0.0f);
  be_->linear_backward(nullptr, dw_alone.data(), nullptr, dy.data(), x.data(), w.data(), M, K, N);
  EXPECT_EQ(dw, dw_alone);
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendOps, ::testing::ValuesIn(test::backend_kinds()), test::BackendTestName());

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
#ifdef UPCYCLE_HAVE_CUDA
  EXPECT_EQ(backend_kind_from_name("cuda"), BackendKind::kCuda);
  EXPECT_UPCYCLE_ERROR(backend_kind_from_name("gpu"), "unknown backend 'gpu' (choose cpu, cpu-bf16, ref or cuda)", "");
#else
  EXPECT_UPCYCLE_ERROR(backend_kind_from_name("cuda"), "unknown backend 'cuda' (choose cpu, cpu-bf16 or ref)", "");
  EXPECT_FALSE(backend_available(BackendKind::kCuda));
  EXPECT_UPCYCLE_ERROR(make_backend(BackendKind::kCuda),
                       "this upcycle was built without the cuda backend (rebuild where nvcc is found, UPCYCLE_CUDA=ON)", "");
#endif
  EXPECT_UPCYCLE_ERROR(backend_kind_from_name(""), "unknown backend ''", "");
}

// Every registry row round-trips: its name selects its kind and, where the backend is available on this
// machine, builds a backend reporting that name; an unavailable one (cuda without a GPU) throws Error.
TEST(BackendOpSelect, RegistryRowsRoundTrip) {
  std::vector<std::string> seen;
  for (const BackendInfo& info : registered_backends()) {
    EXPECT_EQ(backend_kind_from_name(info.name), info.kind) << info.name;
    if (backend_available(info.kind)) {
      EXPECT_EQ(make_backend(info.kind)->name(), info.name);
    } else {
      EXPECT_THROW(make_backend(info.kind), Error) << info.name;
    }
    EXPECT_FALSE(info.summary.empty()) << info.name;
    seen.emplace_back(info.name);
  }
  EXPECT_EQ(seen, backend_names());
#ifdef UPCYCLE_HAVE_CUDA
  EXPECT_EQ(seen, (std::vector<std::string>{"cpu", "cpu-bf16", "ref", "cuda"}));
#else
  EXPECT_EQ(seen, (std::vector<std::string>{"cpu", "cpu-bf16", "ref"}));
#endif
}

}  // namespace
}  // namespace upcycle::backend
