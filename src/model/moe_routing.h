// The routing decision of an MoE layer as the layer coordinates it: MoeOptions → the backend's
// MoeRouteSpec, the routing arrays in backend memory (RoutingBuffers) and the one download of their
// index per forward. The maths lives in the backend ops (backend.h, "MoE routing and losses"); host
// copies of a whole decision exist for tests only (tests/support/moe_routing_test_support.h). Semantics
// are those documented in moe_layer.h. Invariants: deterministic (ties to the lower expert index for top-k and to the lower
// token index for capacity and expert choice); assignments of expert e are rows offsets[e]..offsets[e+1],
// in increasing token order; routing decisions are constants for differentiation.
// Aux-loss-free balancing: an optional selection bias b[E] changes *which* experts token choice picks
// (top-k of p + b) and nothing else; expert choice ignores it.
// Non-goals: updating the bias (train/expert_bias.h).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/buffer.h"
#include "model/moe_options.h"

namespace upcycle::model {

// C = ceil(T·k/E · cf) (token choice), C = min(T, ceil(T·cf/E)) (expert choice).
int64_t token_choice_capacity(int64_t T, int64_t top_k, int64_t E, double capacity_factor);
int64_t expert_choice_capacity(int64_t T, int64_t E, double capacity_factor);

// The op's description of this layer's routing for T tokens (token choice without a capacity factor
// gets capacity T·K: dropless).
backend::Backend::MoeRouteSpec route_spec(const MoeOptions& options, int64_t T);

// moe_route's outputs in backend memory, sized for spec.max_assignments(). index holds offsets[E+1],
// counts[E] and dropped[1] back to back, so the host fetches all three with one download.
struct RoutingBuffers {
  backend::Buffer<int64_t> index;
  backend::Buffer<int32_t> token, expert, topk;
  backend::Buffer<float> weight, probability;
  backend::Buffer<double> topk_sum;

  void reset(backend::Backend& backend, const backend::Backend::MoeRouteSpec& spec);
  backend::Backend::MoeRouteOut out(int64_t experts);
};

// The host's view of index (one download): offsets, counts before dropping, dropped.
struct RoutingIndex {
  std::vector<int64_t> offsets;  // [E+1]
  std::vector<int64_t> counts;   // [E]
  int64_t dropped = 0;
  int64_t kept() const { return offsets.back(); }
};
RoutingIndex download_index(const RoutingBuffers& buffers, int64_t experts);

}  // namespace upcycle::model
