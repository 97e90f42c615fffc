// The op-case table (in the style of ggml's test-backend-ops): one row per op case — the op, its shapes
// (awkward sizes: 1, 7, 33, 130; token counts that are multiples of nothing; GQA; windows; empty expert
// groups; routing with ties, overflowing capacity and empty experts; buffers that cross the optimizer's
// 2¹⁵-element chunks) and, for backward ops, which gradients it computes — run on every registered
// backend but ref and compared with ref, the oracle. A new backend gets every check by being
// registered (test::non_ref_backend_kinds()). Rows and their runner: tests/support/op_table.h; the
// dense, MoE data-path and optimizer rows are below, the MoE routing and router-loss rows in
// op_cases_moe_routing.cpp.
// Each row uploads its seeded inputs into backend buffers, runs forward and backward through the
// Backend interface only, and downloads its outputs, as a device backend needs. Backward ops start
// from non-zero gradient buffers, so the accumulate (+=) contract is compared too.
// Tolerance (test::op_rtol, relative to each tensor's largest value; scalars relative to themselves):
//   integer outputs (routing indices, counts, offsets) exact on every backend;
//   1e-5 for every fp32 op (fp32 kernels vs ref's double accumulation), except
//   1e-2 for the matmul ops (linear, grouped linear) on cpu-bf16, which rounds their inputs to bf16
//   (relative error 2⁻⁹ per input); their exact bf16 semantics are pinned in backend_bf16_test.cpp;
//   0 (bitwise) for the MoE routing and loss ops on the host backends, whose kernels promise ref's
//   arithmetic (test::ref_arithmetic_rtol; 1e-5 for a backend with other arithmetic).
// Rows of the MoE routing and loss ops with a backward also check it against central finite
// differences of the op's own forward, on every backend (OpTableGradient). The dense and MoE data-path
// backwards are proven in double against finite differences, and each backend's against that, in
// backend_grad_test.cpp and moe_backend_grad_test.cpp; hand-computed values of each op are in
// backend_cases_test.cpp, moe_backend_ops_test.cpp and moe_loss_ops_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "support/backend_test_support.h"
#include "support/op_table.h"

namespace upcycle::backend {
namespace {

using test::blocks;
using test::dims;
using test::OpCase;
using test::OpClass;
using test::OpRun;
using test::random_floats;

void add_dense_cases(std::vector<OpCase>& cases) {
  struct Mkn { int64_t M, K, N; };
  uint64_t seed = 1;
  for (Mkn d : {Mkn{1, 1, 1}, Mkn{7, 33, 130}, Mkn{130, 7, 33}, Mkn{33, 130, 7}, Mkn{1, 130, 33}}) {
    for (bool bias : {false, true}) {
      for (bool f32 : {false, true}) {
        const uint64_t s = seed += 10;
        cases.push_back({std::string(f32 ? "linear_f32" : "linear") + dims({{"M", d.M}, {"K", d.K}, {"N", d.N}}) +
                             (bias ? "_bias" : ""),
                         f32 ? OpClass::kFp32 : OpClass::kMatmul, [=](OpRun& r) {
                           const auto x = r.in(random_floats(size_t(d.M * d.K), s));
                           const auto w = r.in(random_floats(size_t(d.N * d.K), s + 1));
                           const float* b = bias ? r.in(random_floats(size_t(d.N), s + 2)) : nullptr;
                           const auto dy = r.in(random_floats(size_t(d.M * d.N), s + 3));
                           float* y = r.out("y", std::vector<float>(size_t(d.M * d.N), 9.0f));
                           float* dx = r.out("dx", random_floats(size_t(d.M * d.K), s + 4));
                           float* dw = r.out("dw", random_floats(size_t(d.N * d.K), s + 5));
                           float* db = bias ? r.out("db", random_floats(size_t(d.N), s + 6)) : nullptr;
                           if (f32) {
                             r.be().linear_forward_f32(y, x, w, b, d.M, d.K, d.N);
                             r.be().linear_backward_f32(dx, dw, db, dy, x, w, d.M, d.K, d.N);
                           } else {
                             r.be().linear_forward(y, x, w, b, d.M, d.K, d.N);
                             r.be().linear_backward(dx, dw, db, dy, x, w, d.M, d.K, d.N);
                           }
                         }});
      }
    }
  }
  for (int64_t D : {1, 7, 130}) {
    const int64_t T = 13;
    const uint64_t s = seed += 10;
    cases.push_back({"rmsnorm" + dims({{"T", T}, {"D", D}}), OpClass::kFp32, [=](OpRun& r) {
                       const auto x = random_floats(size_t(T * D), s, 3.0f);
                       const float* xd = r.in(x);
                       const float* w = r.in(random_floats(size_t(D), s + 1));
                       const float* dy = r.in(random_floats(x.size(), s + 2));
                       float* y = r.out("y", std::vector<float>(x.size()));
                       float* rstd = r.out("rstd", std::vector<float>(size_t(T)));
                       r.be().rmsnorm_forward(y, rstd, xd, w, T, D, 1e-5f);
                       float* dx = r.out("dx", random_floats(x.size(), s + 3));
                       float* dw = r.out("dw", random_floats(size_t(D), s + 4));
                       r.be().rmsnorm_backward(dx, dw, dy, xd, w, rstd, T, D);
                     }});
  }
  for (int64_t offset : {0, 5, 4093}) {
    for (RopeDirection direction : {RopeDirection::kForward, RopeDirection::kInverse}) {
      cases.push_back({"rope" + dims({{"offset", offset}}) +
                           (direction == RopeDirection::kInverse ? "_inverse" : "_forward"),
                       OpClass::kFp32, [=](OpRun& r) {
                         const int64_t seq_len = 11, T = 2 * seq_len, H = 6, S = 10;
                         const float* inv_freq = r.in(test::rope_inv_freq(S));
                         float* x = r.out("x", random_floats(size_t(T * H * S), 200));
                         r.be().rope(x, inv_freq, T, seq_len, H, S, offset, direction);
                       }});
    }
  }
  auto attention = [&](const AttentionShape& sh) {
    const uint64_t s = seed += 10;
    cases.push_back({"attention" + dims({{"B", sh.batch}, {"T", sh.seq_len}, {"H", sh.heads}, {"KV", sh.kv_heads},
                                         {"S", sh.head_dim}, {"window", sh.window}}),
                     OpClass::kFp32, [=](OpRun& r) {
                       const int64_t T = sh.batch * sh.seq_len;
                       const size_t nq = size_t(T * sh.heads * sh.head_dim), nk = size_t(T * sh.kv_heads * sh.head_dim);
                       const float* q = r.in(random_floats(nq, s, 2.0f));
                       const float* k = r.in(random_floats(nk, s + 1, 2.0f));
                       const float* v = r.in(random_floats(nk, s + 2));
                       const float* dout = r.in(random_floats(nq, s + 3));
                       float* out = r.out("out", std::vector<float>(nq));
                       float* lse = r.out("lse", std::vector<float>(size_t(T * sh.heads)));
                       r.be().attention_forward(out, lse, q, k, v, sh);
                       float* dq = r.out("dq", random_floats(nq, s + 4));
                       float* dk = r.out("dk", random_floats(nk, s + 5));
                       float* dv = r.out("dv", random_floats(nk, s + 6));
                       r.be().attention_backward(dq, dk, dv, dout, q, k, v, out, lse, sh);
                     }});
  };
  for (int64_t kv_heads : {2, 6, 1})
    for (int64_t window : {0, 3, 1, 50})
      attention({.batch = 2, .seq_len = 11, .heads = 6, .kv_heads = kv_heads, .head_dim = 10, .window = window,
                 .scale = 1.0f / std::sqrt(10.0f)});
  // Longer than the cpu backward's 64-row tile, lengths and windows not multiples of it.
  for (int64_t window : {0, 70, 5})
    attention({.batch = 1, .seq_len = 150, .heads = 4, .kv_heads = 2, .head_dim = 8, .window = window,
               .scale = 1.0f / std::sqrt(8.0f)});
  cases.push_back({"attention_decode_T13_H6_KV2_S10_past7", OpClass::kFp32, [](OpRun& r) {
                     const int64_t Tmax = 13, past = 7, Tn = 3, H = 6, KV = 2, S = 10;
                     const float* q = r.in(random_floats(size_t(Tn * H * S), 250, 2.0f));
                     const float* k = r.in(random_floats(size_t(Tmax * KV * S), 251, 2.0f));
                     const float* v = r.in(random_floats(size_t(Tmax * KV * S), 252));
                     float* out = r.out("out", std::vector<float>(size_t(Tn * H * S), -7.0f));
                     r.be().attention_decode(out, q, k, v, past,
                                             {.batch = 1, .seq_len = Tn, .heads = H, .kv_heads = KV, .head_dim = S,
                                              .window = 4, .scale = 1.0f / std::sqrt(10.0f)});
                   }});
  cases.push_back({"swiglu_n1031", OpClass::kFp32, [](OpRun& r) {
                     const int64_t n = 1031;
                     auto g_host = random_floats(size_t(n), 400, 4.0f);
                     // exp over/underflow in fp32
                     g_host[0] = 0.0f, g_host[1] = 90.0f, g_host[2] = -90.0f, g_host[3] = 200.0f, g_host[4] = -200.0f;
                     const float* g = r.in(g_host);
                     const float* u = r.in(random_floats(size_t(n), 401));
                     const float* dh = r.in(random_floats(size_t(n), 402));
                     float* h = r.out("h", std::vector<float>(size_t(n)));
                     r.be().swiglu_forward(h, g, u, n);
                     float* dg = r.out("dg", random_floats(size_t(n), 403));
                     float* du = r.out("du", random_floats(size_t(n), 404));
                     r.be().swiglu_backward(dg, du, dh, g, u, n);
                   }});
  cases.push_back({"embedding_rows9_T23_D130", OpClass::kFp32, [](OpRun& r) {
                     const int64_t rows = 9, T = 23, D = 130;
                     std::vector<int32_t> ids(static_cast<size_t>(T));
                     for (int64_t t = 0; t < T; ++t) ids[size_t(t)] = int32_t((t * 5 + t / 4) % rows);  // repeats
                     const int32_t* id = r.in(ids);
                     const float* table = r.in(random_floats(size_t(rows * D), 500));
                     const float* dx = r.in(random_floats(size_t(T * D), 501));
                     float* x = r.out("x", std::vector<float>(size_t(T * D)));
                     r.be().embedding_forward(x, table, id, T, D);
                     float* dtable = r.out("dtable", random_floats(size_t(rows * D), 502));
                     r.be().scatter_add_rows(dtable, dx, id, nullptr, T, rows, D);  // the embedding's backward
                   }});
  for (float logit_scale : {1.0f, 30.0f}) {  // 30: logits far beyond exp's fp32 range
    cases.push_back({"cross_entropy_T13_V130_scale" + std::to_string(int(logit_scale)), OpClass::kFp32,
                     [=](OpRun& r) {
                       const int64_t T = 13, V = 130;
                       std::vector<int32_t> targets(static_cast<size_t>(T));
                       for (int64_t t = 0; t < T; ++t) targets[size_t(t)] = t % 4 == 1 ? -100 : int32_t((t * 37) % V);
                       const float* logits = r.in(random_floats(size_t(T * V), 600, logit_scale));
                       float* dlogits = r.out("dlogits", std::vector<float>(size_t(T * V), 5.0f));
                       r.scalar("loss", r.be().cross_entropy(dlogits, logits, r.in(targets), T, V, 0.7f));
                     }});
  }
  cases.push_back({"axpy_n1031", OpClass::kFp32, [](OpRun& r) {
                     float* y = r.out("y", random_floats(1031, 701));
                     r.be().axpy(y, r.in(random_floats(1031, 700)), -0.37f, 1031);
                   }});
}

void add_moe_cases(std::vector<OpCase>& cases) {
  uint64_t seed = 1000;
  for (int64_t E : {1, 7, 130}) {
    const uint64_t s = seed += 10;
    cases.push_back({"softmax_rows" + dims({{"T", 13}, {"E", E}}), OpClass::kFp32, [=](OpRun& r) {
                       const int64_t T = 13;
                       const float* logits = r.in(random_floats(size_t(T * E), s, 8.0f));
                       const float* dp = r.in(random_floats(size_t(T * E), s + 1));
                       float* p = r.out("probs", std::vector<float>(size_t(T * E), 7.0f));
                       r.be().softmax_rows(p, logits, T, E);
                       float* dl = r.out("dlogits", random_floats(size_t(T * E), s + 2));
                       r.be().softmax_rows_backward(dl, dp, p, T, E);
                     }});
  }
  cases.push_back({"sigmoid_n1031", OpClass::kFp32, [](OpRun& r) {
                     auto z = random_floats(1031, 1100, 6.0f);
                     z[0] = 0.0f, z[1] = 120.0f, z[2] = -120.0f;  // saturation both ways
                     const float* logits = r.in(z);
                     float* scores = r.out("scores", std::vector<float>(z.size(), 3.0f));
                     r.be().sigmoid_forward(scores, logits, 1031);
                     float* dl = r.out("dlogits", random_floats(z.size(), 1101));
                     r.be().sigmoid_backward(dl, r.in(random_floats(z.size(), 1102)), scores, 1031);
                   }});
  for (int64_t D : {1, 7, 130}) {
    for (bool weighted : {true, false}) {
      const uint64_t s = seed += 10;
      cases.push_back({"gather_scatter_rows" + dims({{"T", 9}, {"A", 23}, {"D", D}}) + (weighted ? "_weighted" : ""),
                       OpClass::kFp32, [=](OpRun& r) {
                         const int64_t T = 9, A = 23;
                         std::vector<int32_t> rows_host(static_cast<size_t>(A));
                         for (int64_t a = 0; a < A; ++a)  // repeats; row T−1 never hit
                           rows_host[size_t(a)] = int32_t((a * 5 + a / 3) % (T - 1));
                         const int32_t* rows = r.in(rows_host);
                         const float* x = r.in(random_floats(size_t(T * D), s));
                         const float* xa = r.in(random_floats(size_t(A * D), s + 1));
                         const float* w = weighted ? r.in(random_floats(size_t(A), s + 2)) : nullptr;
                         const float* dy = r.in(random_floats(size_t(T * D), s + 3));
                         float* g = r.out("gathered", std::vector<float>(size_t(A * D), 3.0f));
                         r.be().gather_rows(g, x, rows, A, T, D);
                         float* y = r.out("y", random_floats(size_t(T * D), s + 4));
                         r.be().scatter_add_rows(y, xa, rows, w, A, T, D);
                         float* dx = r.out("dx", random_floats(size_t(A * D), s + 5));
                         float* dw = r.out("dweights", random_floats(size_t(A), s + 6));
                         r.be().scatter_add_rows_backward(dx, dw, dy, xa, rows, w, A, T, D);
                       }});
    }
  }
  struct Kn { int64_t K, N; };
  for (Kn d : {Kn{1, 1}, Kn{7, 33}, Kn{33, 7}, Kn{130, 13}}) {
    const uint64_t s = seed += 10;
    cases.push_back({"grouped_linear" + dims({{"G", 6}, {"K", d.K}, {"N", d.N}}), OpClass::kMatmul, [=](OpRun& r) {
                       // Empty groups first, in the middle and last; a single-row group; one big group.
                       const std::vector<int64_t> offsets = {0, 0, 1, 1, 34, 41, 41};
                       const int64_t G = int64_t(offsets.size()) - 1, A = offsets.back(), per = d.N * d.K;
                       const float* x = r.in(random_floats(size_t(A * d.K), s));
                       const auto w = blocks<const float>(r.in(random_floats(size_t(G * per), s + 1)), G, per);
                       const float* dy = r.in(random_floats(size_t(A * d.N), s + 2));
                       float* y = r.out("y", std::vector<float>(size_t(A * d.N), 5.0f));
                       r.be().grouped_linear_forward(y, x, w.data(), offsets.data(), G, d.K, d.N);
                       float* dx = r.out("dx", random_floats(size_t(A * d.K), s + 3));
                       auto dw = blocks<float>(r.out("dw", random_floats(size_t(G * per), s + 4)), G, per);
                       dw[4] = nullptr;  // a skipped gradient slot
                       r.be().grouped_linear_backward(dx, dw.data(), dy, x, w.data(), offsets.data(), G, d.K, d.N);
                     }});
  }
}

// The optimizer ops: sizes below, at and across the cpu backend's 2¹⁵-element chunks, parameter
// ranges that are empty, one element, or straddle a chunk edge.
void add_optimizer_cases(std::vector<OpCase>& cases) {
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{1031}, int64_t{3 * 32768 + 1234}}) {
    cases.push_back({"l2_norm_n" + std::to_string(n), OpClass::kFp32, [=](OpRun& r) {
                       r.scalar("norm", r.be().l2_norm(r.in(random_floats(size_t(n), 1200, 0.3f)), n));
                     }});
    cases.push_back({"scale_n" + std::to_string(n), OpClass::kFp32, [=](OpRun& r) {
                       float* x = r.out("x", random_floats(size_t(n), 1201));
                       r.be().scale(x, 0.123456789, n);
                     }});
  }
  for (int64_t t : {1, 2, 1000}) {
    cases.push_back({"adamw_step_t" + std::to_string(t), OpClass::kFp32, [=](OpRun& r) {
                       // Ranges: 7, 0, 32768 (crosses the first chunk edge), 1, 40000, 3.
                       const std::vector<int64_t> offsets = {0, 7, 7, 32775, 32776, 72776, 72779};
                       const std::vector<uint8_t> decay = {1, 1, 0, 1, 0, 1};
                       const int64_t ranges = 6, n = offsets.back();
                       auto v0 = random_floats(size_t(n), 1302, 0.01f);
                       for (float& v : v0) v *= v;  // a second moment is ≥ 0
                       float* p = r.out("params", random_floats(size_t(n), 1300));
                       float* m = r.out("exp_avg", random_floats(size_t(n), 1301, 0.1f));
                       float* v = r.out("exp_avg_sq", v0);
                       const float* g = r.in(random_floats(size_t(n), 1303));
                       Backend::AdamWScalars s{.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8};
                       const double lr = 3e-4;
                       s.step_size = lr / (1.0 - std::pow(s.beta1, double(t)));
                       s.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(s.beta2, double(t)));
                       s.decay_keep = 1.0 - lr * 0.1;
                       r.be().adamw_step(p, m, v, g, offsets.data(), decay.data(), ranges, s);
                     }});
  }
  for (int64_t E : {1, 8, 64}) {
    cases.push_back({"expert_bias_update_E" + std::to_string(E), OpClass::kFp32, [=](OpRun& r) {
                       std::vector<int64_t> load(static_cast<size_t>(E));
                       for (int64_t e = 0; e < E; ++e) load[size_t(e)] = (e * 37 + 11) % 29;
                       float* bias = r.out("bias", random_floats(size_t(E), 1400, 0.01f));
                       r.be().expert_bias_update(bias, load.data(), E, 1e-3);
                     }});
  }
}

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = [] {
    std::vector<OpCase> all;
    add_dense_cases(all);
    add_moe_cases(all);
    test::add_moe_routing_cases(all);
    add_optimizer_cases(all);
    return all;
  }();
  return cases;
}

class OpTable : public ::testing::TestWithParam<std::tuple<size_t, BackendKind>> {};

TEST_P(OpTable, MatchesRef) {
  const OpCase& c = op_cases()[std::get<0>(GetParam())];
  const BackendKind kind = std::get<1>(GetParam());
  auto ref = make_backend(BackendKind::kRef), be = make_backend(kind);
  const double rtol = test::op_rtol(kind, c.op_class);
  OpRun want(*ref), got(*be);
  c.run(want);
  c.run(got);
  const auto want_out = want.outputs(), got_out = got.outputs();
  ASSERT_EQ(got_out.size(), want_out.size());
  for (size_t i = 0; i < want_out.size(); ++i)
    EXPECT_TRUE(test::op_outputs_close(got_out[i].values, want_out[i].values, want_out[i].integer ? 0.0 : rtol))
        << want_out[i].name;
}

std::vector<size_t> case_indices() {
  std::vector<size_t> idx(op_cases().size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  return idx;
}

INSTANTIATE_TEST_SUITE_P(Backends, OpTable,
                         ::testing::Combine(::testing::ValuesIn(case_indices()),
                                            ::testing::ValuesIn(test::non_ref_backend_kinds())),
                         [](const auto& info) {
                           return op_cases()[std::get<0>(info.param)].name + "_" +
                                  test::backend_test_name(std::get<1>(info.param));
                         });

// Rows whose op has a backward checked against finite differences of its own forward: on every
// registered backend, ref included (ref's are its oracle's; a backend's own forward and backward must
// agree with each other, not only with ref's).
std::vector<size_t> gradient_case_indices() {
  std::vector<size_t> idx;
  for (size_t i = 0; i < op_cases().size(); ++i)
    if (op_cases()[i].gradient_check) idx.push_back(i);
  return idx;
}

class OpTableGradient : public ::testing::TestWithParam<std::tuple<size_t, BackendKind>> {};

TEST_P(OpTableGradient, MatchesFiniteDifferences) {
  auto be = make_backend(std::get<1>(GetParam()));
  op_cases()[std::get<0>(GetParam())].gradient_check(*be);
}

INSTANTIATE_TEST_SUITE_P(Backends, OpTableGradient,
                         ::testing::Combine(::testing::ValuesIn(gradient_case_indices()),
                                            ::testing::ValuesIn(test::backend_kinds())),
                         [](const auto& info) {
                           return op_cases()[std::get<0>(info.param)].name + "_" +
                                  test::backend_test_name(std::get<1>(info.param));
                         });

// The table is not vacuous: it holds a case for every op family, and its outputs are not all zero.
TEST(OpTableCoverage, EveryOpFamilyHasACaseWithNonZeroOutputs) {
  const std::vector<std::string> families = {
      "linear_",  "linear_f32_",  "rmsnorm_",     "rope_",         "attention_",   "attention_decode_",
      "swiglu_",  "embedding_",   "cross_entropy_", "axpy_",       "softmax_rows_", "sigmoid_",
      "gather_scatter_rows_", "grouped_linear_", "moe_jitter_", "moe_route_", "moe_aux_loss_",
      "logsumexp_rows_", "moe_z_loss_", "moe_shared_gate_", "dirichlet_prior_loss_", "moe_router_stats_",
      "l2_norm_", "scale_", "adamw_step_", "expert_bias_update_"};
  auto ref = make_backend(BackendKind::kRef);
  for (const std::string& family : families) {
    double largest = 0;
    for (const OpCase& c : op_cases()) {
      if (!c.name.starts_with(family)) continue;
      OpRun run(*ref);
      c.run(run);
      for (const test::OpOutput& o : run.outputs())
        for (double v : o.values) largest = std::max(largest, std::fabs(v));
    }
    EXPECT_GT(largest, 0.0) << family;
  }
}

// The routing rows really are awkward: one drops assignments, one leaves an expert without tokens while
// others get some.
TEST(OpTableCoverage, RoutingRowsDropAndLeaveExpertsEmpty) {
  auto ref = make_backend(BackendKind::kRef);
  bool dropped = false, empty = false;
  for (const OpCase& c : op_cases()) {
    if (!c.name.starts_with("moe_route_")) continue;
    OpRun run(*ref);
    c.run(run);
    const std::vector<double> index = run.output("index");  // offsets[E+1], counts[E], dropped
    const size_t E = (index.size() - 2) / 2;
    dropped |= index[2 * E + 1] > 0;
    for (size_t e = 0; e < E && index[E] > 0; ++e) empty |= index[e] == index[e + 1];
  }
  EXPECT_TRUE(dropped);
  EXPECT_TRUE(empty);
}

// Every op with a backward has at least one finite-difference row.
TEST(OpTableCoverage, EveryBackwardHasAFiniteDifferenceRow) {
  for (const std::string family : {"moe_jitter_", "moe_route_", "moe_z_loss_", "moe_shared_gate_"}) {
    bool found = false;
    for (const OpCase& c : op_cases()) found |= c.name.starts_with(family) && bool(c.gradient_check);
    EXPECT_TRUE(found) << family;
  }
}

}  // namespace
}  // namespace upcycle::backend
