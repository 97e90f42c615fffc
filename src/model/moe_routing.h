// The routing decision of an MoE layer as the layer coordinates it: MoeOptions → the backend's
// MoeRouteSpec, the routing arrays in backend memory (RoutingBuffers), and host-side copies for tests
// and tools (route, aux_loss, z_loss run the backend ops and download the results). The maths lives in
// the backend ops (backend.h, "MoE routing and losses"); semantics are those documented in
// moe_layer.h. Invariants: deterministic (ties to the lower expert index for top-k and to the lower
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

// A routing decision copied to the host (tests, tools).
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

// Backend::moe_route on host probabilities p[T,E] (uploaded), the result downloaded.
// selection_bias_E: null = rank by p alone; otherwise token choice ranks experts by p[t,e] + b[e].
Routing route(backend::Backend& backend, const float* probs_TE, int64_t T, const MoeOptions& options,
              const float* selection_bias_E = nullptr);
// L_aux = E/A · Σ_e count_e·P_e (Backend::moe_aux_loss) on host inputs.
double aux_loss(backend::Backend& backend, const float* probs_TE, int64_t T, int64_t E,
                const std::vector<int64_t>& counts_E);
// L_z = mean_t lse_t² (Backend::logsumexp_rows + moe_z_loss) on host logits; lse_T receives the T lse.
double z_loss(backend::Backend& backend, const float* logits_TE, int64_t T, int64_t E, std::vector<double>& lse_T);

}  // namespace upcycle::model
