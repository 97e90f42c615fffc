// The routing decision and router losses of model/moe_routing.h run on every registered backend from
// host inputs: each backend must return exactly the ref backend's result (moe_route, moe_aux_loss,
// logsumexp_rows and moe_z_loss promise the same bits everywhere), and the ref's is returned, so the
// hand-built routing tests check every backend at once. Also moe_route_backward on a host routing.
// Header-only, like backend_test_support.h.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "model/moe_routing.h"
#include "support/backend_test_support.h"

namespace upcycle::test {

inline void expect_same_routing(const model::Routing& a, const model::Routing& b, std::string_view backend) {
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

// model::route on every registered backend (they must agree exactly); the ref backend's result.
inline model::Routing route(const float* probs_TE, int64_t T, const model::MoeOptions& options,
                            const float* selection_bias_E = nullptr) {
  auto ref = backend::make_backend(backend::BackendKind::kRef);
  const model::Routing want = model::route(*ref, probs_TE, T, options, selection_bias_E);
  for (const backend::BackendInfo& info : test::backend_infos()) {
    auto be = backend::make_backend(info.kind);
    expect_same_routing(model::route(*be, probs_TE, T, options, selection_bias_E), want, info.name);
  }
  return want;
}

inline double aux_loss(const float* probs_TE, int64_t T, int64_t E, const std::vector<int64_t>& counts_E) {
  auto ref = backend::make_backend(backend::BackendKind::kRef);
  const double want = model::aux_loss(*ref, probs_TE, T, E, counts_E);
  for (const backend::BackendInfo& info : test::backend_infos())
    EXPECT_EQ(model::aux_loss(*backend::make_backend(info.kind), probs_TE, T, E, counts_E), want) << info.name;
  return want;
}

inline double z_loss(const float* logits_TE, int64_t T, int64_t E, std::vector<double>& lse_T) {
  auto ref = backend::make_backend(backend::BackendKind::kRef);
  const double want = model::z_loss(*ref, logits_TE, T, E, lse_T);
  for (const backend::BackendInfo& info : test::backend_infos()) {
    std::vector<double> lse;
    EXPECT_EQ(model::z_loss(*backend::make_backend(info.kind), logits_TE, T, E, lse), want) << info.name;
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
inline std::vector<float> route_backward(backend::Backend& be, const model::Routing& r, const std::vector<float>& dweight_A,
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
