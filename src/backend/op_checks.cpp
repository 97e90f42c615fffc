// Shared argument checks for backend ops; see op_checks.h. Kept out of the kernels so a bad shape
// fails loudly once instead of reading out of bounds.
#include "backend/op_checks.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace upcycle::backend {

void check_attention_shape(const AttentionShape& shape) {
  UPCYCLE_CHECK(shape.batch >= 0 && shape.seq_len >= 0 && shape.head_dim > 0, "attention: bad B/Tseq/S");
  UPCYCLE_CHECK(shape.heads > 0 && shape.kv_heads > 0 && shape.heads % shape.kv_heads == 0,
                "attention: heads must be a positive multiple of kv_heads");
  UPCYCLE_CHECK(shape.window >= 0, "attention: negative window");
}

void check_attention_decode(const AttentionShape& shape, int64_t past) {
  check_attention_shape(shape);
  UPCYCLE_CHECK(shape.batch == 1, "attention_decode: one sequence at a time (batch must be 1)");
  UPCYCLE_CHECK(past >= 0, "attention_decode: negative past length");
}

void check_rope_args(int64_t T, int64_t seq_len, int64_t n_heads, int64_t S) {
  UPCYCLE_CHECK(seq_len > 0 && T % seq_len == 0, "rope: T must be a multiple of seq_len");
  UPCYCLE_CHECK(n_heads > 0 && S > 0 && S % 2 == 0, "rope: head dim must be even");
}

void check_ids(const int32_t* ids, int64_t T) {
  for (int64_t t = 0; t < T; ++t) UPCYCLE_CHECK(ids[t] >= 0, "embedding: negative token id " + std::to_string(ids[t]));
}

void check_targets(const int32_t* targets, int64_t T, int64_t V) {
  for (int64_t t = 0; t < T; ++t) {
    UPCYCLE_CHECK(targets[t] < V, "cross_entropy: target " + std::to_string(targets[t]) + " ≥ vocab " +
                                      std::to_string(V));
  }
}

void check_rows(const int32_t* rows, int64_t A, int64_t T) {
  for (int64_t a = 0; a < A; ++a) {
    UPCYCLE_CHECK(rows[a] >= 0 && rows[a] < T, "row index " + std::to_string(rows[a]) + " outside [0, " +
                                                   std::to_string(T) + ")");
  }
}

void check_group_offsets(const int64_t* offsets, int64_t G) {
  UPCYCLE_CHECK(G >= 0 && offsets[0] == 0, "group offsets must start at 0");
  for (int64_t g = 0; g < G; ++g) UPCYCLE_CHECK(offsets[g] <= offsets[g + 1], "group offsets must not decrease");
}

void check_moe_route_spec(const Backend::MoeRouteSpec& spec) {
  const int64_t T = spec.tokens, E = spec.experts, G = spec.n_group;
  UPCYCLE_CHECK(E > 0 && T >= 0, "moe_route: bad sizes");
  if (spec.expert_choice) {
    UPCYCLE_CHECK(spec.capacity >= 0 && spec.capacity <= T, "moe_route: expert choice needs a capacity in [0, T]");
  } else {
    UPCYCLE_CHECK(spec.top_k >= 1 && spec.top_k <= E, "moe_route: top_k outside [1, E]");
    UPCYCLE_CHECK(spec.capacity >= 0, "moe_route: negative capacity");
    UPCYCLE_CHECK(G >= 1 && E % G == 0 && (G == 1 || E / G >= 2) && spec.topk_group >= 1 && spec.topk_group <= G &&
                      spec.top_k <= spec.topk_group * (E / G),
                  "route: expert groups must split E evenly (≥ 2 per group) and hold top_k experts");
  }
}

void check_moe_route(const float* probs_TE, const float* bias_E, const Backend::MoeRouteSpec& spec) {
  check_moe_route_spec(spec);
  const int64_t T = spec.tokens, E = spec.experts;
  int64_t bad_score = -1, bad_bias = -1;
  for (int64_t i = 0; i < T * E && bad_score < 0; ++i)
    if (!std::isfinite(probs_TE[i])) bad_score = i;
  if (bias_E && !spec.expert_choice)
    for (int64_t e = 0; e < E && bad_bias < 0; ++e)
      if (!std::isfinite(bias_E[e])) bad_bias = e;
  check_moe_route_finite(bad_score, bad_score < 0 ? 0.0f : probs_TE[bad_score], bad_bias,
                         bad_bias < 0 ? 0.0f : bias_E[bad_bias], E);
}

void check_moe_route_finite(int64_t first_bad_score, float score, int64_t first_bad_bias, float bias, int64_t E) {
  if (first_bad_score >= 0)
    throw NonFiniteRouterScores("router score " + std::to_string(score) + " of token " +
                                std::to_string(first_bad_score / E) + ", expert " + std::to_string(first_bad_score % E) +
                                " is not finite");
  if (first_bad_bias >= 0)
    throw NonFiniteRouterScores("selection bias " + std::to_string(bias) + " of expert " +
                                std::to_string(first_bad_bias) + " is not finite");
}

std::vector<int32_t> dirichlet_prior_of_tokens(const int32_t* domain_T, const int32_t* prior_of_domain,
                                               int64_t domains, int64_t priors, int64_t T) {
  UPCYCLE_CHECK(priors >= 1, "Dirichlet prior: no prior given");
  std::vector<int32_t> prior_T(size_t(T), 0);
  if (!domain_T) return prior_T;
  for (int64_t t = 0; t < T; ++t) {
    UPCYCLE_CHECK(domain_T[t] >= 0 && domain_T[t] < domains, "Dirichlet prior: domain id out of range");
    prior_T[size_t(t)] = prior_of_domain[domain_T[t]];
    UPCYCLE_CHECK(prior_T[size_t(t)] >= 0 && prior_T[size_t(t)] < priors, "Dirichlet prior: prior index out of range");
  }
  return prior_T;
}

}  // namespace upcycle::backend
