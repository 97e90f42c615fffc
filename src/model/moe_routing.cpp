// Routing coordination (contract in moe_routing.h): options → MoeRouteSpec, the routing buffers and
// their one index download. No maths on tensor data: that is the backend's.
#include "model/moe_routing.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace upcycle::model {

int64_t token_choice_capacity(int64_t T, int64_t top_k, int64_t E, double capacity_factor) {
  // Megatron's order of operations: ceil(tokens·k / E · cf), in double.
  return int64_t(std::ceil(double(T * top_k) / double(E) * capacity_factor));
}

int64_t expert_choice_capacity(int64_t T, int64_t E, double capacity_factor) {
  return std::min<int64_t>(T, int64_t(std::ceil(double(T) / double(E) * capacity_factor)));
}

backend::Backend::MoeRouteSpec route_spec(const MoeOptions& o, int64_t T) {
  UPCYCLE_CHECK(o.num_experts > 0 && T >= 0, "route: bad sizes");
  backend::Backend::MoeRouteSpec spec;
  spec.tokens = T;
  spec.experts = o.num_experts;
  spec.expert_choice = o.mode == RoutingMode::kExpertChoice;
  if (spec.expert_choice) {  // balanced by construction: no top-k, no bias, weight p
    UPCYCLE_CHECK(o.capacity_factor > 0, "expert choice needs capacity_factor > 0");
    spec.capacity = expert_choice_capacity(T, o.num_experts, o.capacity_factor);
    return spec;
  }
  UPCYCLE_CHECK(o.top_k >= 1 && o.top_k <= o.num_experts, "route: top_k outside [1, E]");
  spec.top_k = o.top_k;
  spec.capacity = o.capacity_factor > 0 ? token_choice_capacity(T, o.top_k, o.num_experts, o.capacity_factor)
                                        : T * o.top_k;
  spec.renormalize = o.topk_norm == TopkNorm::kRenormalize;
  spec.sigmoid_scores = o.scoring == RouterScoring::kSigmoid;
  spec.scaling = o.topk_scaling;
  spec.n_group = o.n_group;
  spec.topk_group = o.topk_group;
  return spec;
}

void RoutingBuffers::reset(backend::Backend& be, const backend::Backend::MoeRouteSpec& spec) {
  const auto A = size_t(spec.max_assignments()), E = size_t(spec.experts);
  const auto TK = size_t(spec.expert_choice ? 0 : spec.tokens * spec.top_k);
  // moe_route writes index, topk and topk_sum in full and the first offsets[E] assignments, the only
  // ones read: no fill needed.
  index.resize_for_overwrite(be, 2 * E + 2);
  token.resize_for_overwrite(be, A);
  expert.resize_for_overwrite(be, A);
  weight.resize_for_overwrite(be, A);
  probability.resize_for_overwrite(be, A);
  topk.resize_for_overwrite(be, TK);
  topk_sum.resize_for_overwrite(be, spec.expert_choice ? 0 : size_t(spec.tokens));
}

backend::Backend::MoeRouteOut RoutingBuffers::out(int64_t experts) {
  int64_t* base = index.data();
  return {.offsets = base, .counts = base + experts + 1, .dropped = base + 2 * experts + 1,
          .token = token.data(), .expert = expert.data(), .weight = weight.data(),
          .probability = probability.data(), .topk = topk.data(), .topk_sum = topk_sum.data()};
}

RoutingIndex download_index(const RoutingBuffers& buffers, int64_t experts) {
  const std::vector<int64_t> host = buffers.index.to_host();  // the one readback of a forward's routing
  const auto E = size_t(experts);
  RoutingIndex r;
  r.offsets.assign(host.begin(), host.begin() + long(E + 1));
  r.counts.assign(host.begin() + long(E + 1), host.begin() + long(2 * E + 1));
  r.dropped = host[2 * E + 1];
  return r;
}

}  // namespace upcycle::model
