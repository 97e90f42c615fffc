// Argument checks shared by every backend, run before any kernel starts (and so outside OpenMP
// regions, where a throw would terminate the process). A failure is a bug in the caller inside
// upcycle (model code builds every shape), hence UPCYCLE_CHECK rather than a user Error.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace upcycle::backend {

void check_attention_shape(const AttentionShape& shape);
// attention_decode: one sequence, past ≥ 0.
void check_attention_decode(const AttentionShape& shape, int64_t past);
void check_rope_args(int64_t T, int64_t seq_len, int64_t n_heads, int64_t S);
// Token ids index a table row: they must be ≥ 0 (the table's row count is the caller's invariant).
void check_ids(const int32_t* ids, int64_t T);
// Targets are ignored (< 0) or a valid class < V.
void check_targets(const int32_t* targets, int64_t T, int64_t V);
// Gather/scatter row indices lie in [0, T).
void check_rows(const int32_t* rows, int64_t A, int64_t T);
// Group offsets[G+1] start at 0 and never decrease.
void check_group_offsets(const int64_t* offsets, int64_t G);
// moe_route: sizes, expert groups that split E evenly (≥ 2 experts each) and hold top_k experts, a
// capacity ≥ 0 (expert choice: ≤ T); finite scores and bias (a NaN would make the ranking an invalid
// ordering), else NonFiniteRouterScores: that one comes from the data, not from the caller.
void check_moe_route(const float* probs_TE, const float* bias_E, const Backend::MoeRouteSpec& spec);
// The two halves of check_moe_route, for a device backend: the spec (before any kernel) and the report
// of the first non-finite score and bias entry it found on the device.
void check_moe_route_spec(const Backend::MoeRouteSpec& spec);
// check_moe_route's failure (NonFiniteRouterScores) for the first non-finite score (index into p[T,E],
// its value) and bias entry (index, value); −1 = none, and then the value is not read.
void check_moe_route_finite(int64_t first_bad_score, float score, int64_t first_bad_bias, float bias, int64_t E);
// dirichlet_prior_loss: each token's prior index, prior_of_domain[domain_T[t]] (all 0 when domain_T is
// null), after checking domain ids lie in [0, domains) and prior indices in [0, priors).
std::vector<int32_t> dirichlet_prior_of_tokens(const int32_t* domain_T, const int32_t* prior_of_domain,
                                               int64_t domains, int64_t priors, int64_t T);

}  // namespace upcycle::backend
