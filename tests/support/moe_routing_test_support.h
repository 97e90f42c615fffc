// The routing decision and router losses (backend ops moe_route, moe_aux_loss, logsumexp_rows,
// moe_z_loss) run from host inputs and copied back to the host (Routing): on one backend, or on every
// registered backend, where each must return exactly the ref backend's result and the ref's is returned,
// so the hand-built routing tests check every backend at once. Also moe_route_backward on a host
// routing. The model itself never copies a decision to the host (model/moe_routing.h).
// Header-only, like backend_test_support.h.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "model/moe_routing.h"
#include "support/backend_test_support.h"

namespace upcycle::test {

// A routing decision copied to the host.
struct Routing {
  int64_t tokens = 0, experts = 0;
  std::vector<int64_t> offsets;    // [E+1]
  std::vector<int32_t> token;      // [A] kept assignments
  std::vector<int32_t> expert;     // [A]
  std::vector<float> weight;       // [A] combine weight
  std::vector<float> probability;  // [A] p[token, expert]
  // Token choice only: each token's top-k experts, best first, before capacity dropping, and the
  // renormalisation denominator Σ_k p of that set.
  int64_t top_k = 0;
  std::vector<int32_t> topk_TK;
  std::vector<double> topk_sum_T;
  std::vector<int64_t> counts_E;   // assignments per expert before dropping (the aux loss's count_e)
  int64_t assignments = 0;         // before dropping
  int64_t dropped = 0;

  int64_t kept() const { return int64_t(token.size()); }
};

// Router scores p[T,E] for routing tests: softmax rows of seeded logits (on the ref backend), with
// expert 0 pushed down so it rarely wins; with `ties` the logits are rounded to multiples of 1/2 first,
// so many scores repeat exactly; `sigmoid` maps them to independent values in (0, 0.99].
inline std::vector<float> router_probs(int64_t T, int64_t E, uint64_t seed, bool ties, bool sigmoid = false) {
  std::vector<float> logits = random_floats(size_t(T * E), seed, 2.0f, "logits");
  for (int64_t t = 0; t < T; ++t) logits[size_t(t * E)] -= 3.0f;
  if (ties)
    for (float& l : logits) l = std::round(l * 2.0f) / 2.0f;
  std::vector<float> p(logits.size());
  backend::make_backend(backend::BackendKind::kRef)->softmax_rows(p.data(), logits.data(), T, E);
  if (sigmoid)
    for (float& v : p) v = std::min(0.99f, v * 2.0f);
  return p;
}

template <class T>
inline backend::Buffer<T> upload_host(backend::Backend& be, const T* host, size_t n) {
  backend::Buffer<T> buffer(be, n);
  buffer.upload(std::span<const T>(host, n));
  return buffer;
}

template <class T>
inline std::vector<T> download_prefix(const backend::Buffer<T>& buffer, int64_t n) {
  std::vector<T> all = buffer.to_host();
  all.resize(size_t(n));
  return all;
}

// Backend::moe_route on one backend for host probabilities p[T,E] (uploaded), the decision downloaded.
// selection_bias_E: null = rank by p alone; otherwise token choice ranks experts by p[t,e] + b[e].
inline Routing route(backend::Backend& be, const float* probs_TE, int64_t T, const model::MoeOptions& options,
                     const float* selection_bias_E = nullptr) {
  const backend::Backend::MoeRouteSpec spec = model::route_spec(options, T);
  const int64_t E = spec.experts;
  const auto probs = upload_host(be, probs_TE, size_t(T * E));
  backend::Buffer<float> bias;
  if (selection_bias_E) bias = upload_host(be, selection_bias_E, size_t(E));
  model::RoutingBuffers buffers;
  buffers.reset(be, spec);
  be.moe_route(buffers.out(E), probs.data(), selection_bias_E ? bias.data() : nullptr, spec);
  const model::RoutingIndex index = model::download_index(buffers, E);
  Routing r{.tokens = T, .experts = E, .offsets = index.offsets};
  r.token = download_prefix(buffers.token, index.kept());
  r.expert = download_prefix(buffers.expert, index.kept());
  r.weight = download_prefix(buffers.weight, index.kept());
  r.probability = download_prefix(buffers.probability, index.kept());
  r.top_k = spec.top_k;
  r.topk_TK = buffers.topk.to_host();
  r.topk_sum_T = buffers.topk_sum.to_host();
  r.counts_E = index.counts;
  r.assignments = spec.max_assignments();
  r.dropped = index.dropped;
  return r;
}

// L_aux = E/A · Σ_e count_e·P_e (Backend::moe_aux_loss) on one backend, host inputs.
inline double aux_loss(backend::Backend& be, const float* probs_TE, int64_t T, int64_t E,
                       const std::vector<int64_t>& counts_E) {
  const auto probs = upload_host(be, probs_TE, size_t(T * E));
  const auto counts = upload_host(be, counts_E.data(), counts_E.size());
  backend::Buffer<double> loss(be, 1);
  be.moe_aux_loss(loss.data(), probs.data(), counts.data(), T, E);
  return loss.to_host()[0];
}

// L_z = mean_t lse_t² (Backend::logsumexp_rows + moe_z_loss) on one backend; lse_T receives the T lse.
inline double z_loss(backend::Backend& be, const float* logits_TE, int64_t T, int64_t E, std::vector<double>& lse_T) {
  const auto logits = upload_host(be, logits_TE, size_t(T * E));
  backend::Buffer<double> lse(be, size_t(T)), loss(be, 1);
  be.logsumexp_rows(lse.data(), logits.data(), T, E);
  be.moe_z_loss(loss.data(), lse.data(), T);
  lse_T = lse.to_host();
  return loss.to_host()[0];
}

inline void expect_same_routing(const Routing& a, const Routing& b, std::string_view backend) {
  SCOPED_TRACE(std::string(backend));
  EXPECT_EQ(a.offsets, b.offsets);
  EXPECT_EQ(a.token, b.token);
  EXPECT_EQ(a.expert, b.expert);
  EXPECT_EQ(a.weight, b.weight);
  EXPECT_EQ(a.probability, b.probability);
  EXPECT_EQ(a.topk_TK, b.topk_TK);
  EXPECT_EQ(a.topk_sum_T, b.topk_sum_T);
  EXPECT_EQ(a.counts_E, b.counts_E);
  EXPECT_EQ(a.assignments, b.assignments);
  EXPECT_EQ(a.dropped, b.dropped);
}

// route() on every registered backend (they must agree exactly); the ref backend's result.
inline Routing route(const float* probs_TE, int64_t T, const model::MoeOptions& options,
                            const float* selection_bias_E = nullptr) {
  auto ref = backend::make_backend(backend::BackendKind::kRef);
  const Routing want = route(*ref, probs_TE, T, options, selection_bias_E);
  for (const backend::BackendInfo& info : test::backend_infos()) {
    auto be = backend::make_backend(info.kind);
    expect_same_routing(route(*be, probs_TE, T, options, selection_bias_E), want, info.name);
  }
  return want;
}

inline double aux_loss(const float* probs_TE, int64_t T, int64_t E, const std::vector<int64_t>& counts_E) {
  auto ref = backend::make_backend(backend::BackendKind::kRef);
  const double want = aux_loss(*ref, probs_TE, T, E, counts_E);
  for (const backend::BackendInfo& info : test::backend_infos())
    EXPECT_EQ(aux_loss(*backend::make_backend(info.kind), probs_TE, T, E, counts_E), want) << info.name;
  return want;
}

inline double z_loss(const float* logits_TE, int64_t T, int64_t E, std::vector<double>& lse_T) {
  auto ref = backend::make_backend(backend::BackendKind::kRef);
  const double want = z_loss(*ref, logits_TE, T, E, lse_T);
  for (const backend::BackendInfo& info : test::backend_infos()) {
    std::vector<double> lse;
    EXPECT_EQ(z_loss(*backend::make_backend(info.kind), logits_TE, T, E, lse), want) << info.name;
    EXPECT_EQ(lse, lse_T) << info.name;
  }
  return want;
}

template <class T>
backend::Buffer<T> to_buffer(backend::Backend& be, const std::vector<T>& host, size_t size) {
  backend::Buffer<T> buffer(be, size);
  std::vector<T> padded = host;
  padded.resize(size);
  buffer.upload(padded);
  return buffer;
}

// Backend::moe_route_backward on `be` for a host routing (from route() with the same options):
// dprobs[T,E] of Σ_a dweight[a]·weight[a] + aux_coef·L_aux + dirichlet_coef·dirichlet_dprobs.
inline std::vector<float> route_backward(backend::Backend& be, const Routing& r, const std::vector<float>& dweight_A,
                                         const model::MoeOptions& options, double aux_coef = 0.0,
                                         const std::vector<double>& dirichlet_dprobs_TE = {},
                                         double dirichlet_coef = 0.0) {
  const backend::Backend::MoeRouteSpec spec = model::route_spec(options, r.tokens);
  const auto A = size_t(spec.max_assignments()), TE = size_t(r.tokens * r.experts);
  auto token = to_buffer(be, r.token, A), expert = to_buffer(be, r.expert, A), topk = to_buffer(be, r.topk_TK, r.topk_TK.size());
  auto weight = to_buffer(be, r.weight, A), probability = to_buffer(be, r.probability, A), dweight = to_buffer(be, dweight_A, A);
  auto topk_sum = to_buffer(be, r.topk_sum_T, r.topk_sum_T.size());
  auto counts = to_buffer(be, r.counts_E, r.counts_E.size()), offsets = to_buffer(be, r.offsets, r.offsets.size());
  auto dirichlet = to_buffer(be, dirichlet_dprobs_TE, dirichlet_dprobs_TE.size());
  const backend::Backend::MoeRouteOut out{.offsets = offsets.data(), .counts = counts.data(), .dropped = nullptr,
                                          .token = token.data(), .expert = expert.data(), .weight = weight.data(),
                                          .probability = probability.data(), .topk = topk.data(),
                                          .topk_sum = topk_sum.data()};
  backend::Buffer<float> dprobs(be, TE);
  be.moe_route_backward(dprobs.data(), dweight.data(), out, r.kept(), spec, aux_coef,
                        dirichlet_dprobs_TE.empty() ? nullptr : dirichlet.data(), dirichlet_coef);
  return dprobs.to_host();
}

}  // namespace upcycle::test
