// The ranking rules of Backend::moe_route, shared by the ref and cpu kernels so both pick exactly the
// same experts: one strict total order (score, then lower index), DeepSeek-V3 group limiting, one
// token's top-k, and an expert's capacity cut; also the engine's one row logsumexp and the z loss's
// mean, so both kernels compute them with the same code, and the jitter noise's stream key. The
// kernels differ only in how they loop and thread.
// Non-goals: the loops over tokens and experts themselves (those are the kernels').
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace upcycle::backend::moe_rules {

// `a` ranks before `b` when its score is higher, or equal with a lower index.
struct ByScore {
  const float* score;  // indexed by candidate
  bool operator()(int32_t a, int32_t b) const {
    return score[a] > score[b] || (score[a] == score[b] && a < b);
  }
};

// One token's top-k (token choice): ranks rank_E (p + bias, or p) among the eligible experts, writes the
// picks best first to topk_K and returns the renormalisation sum Σ_k p (double; + 1e-20 for sigmoid
// scores, as HF). `order` is scratch.
double token_topk(int32_t* topk_K, const float* p_E, const float* rank_E, const Backend::MoeRouteSpec& spec,
                  std::vector<int32_t>& order);

// Cuts an expert's candidates (increasing token order) to its `capacity` highest-p tokens (ties: lower
// token), back in increasing token order; p_T is that expert's column of p. Returns the number dropped.
int64_t keep_capacity(std::vector<int32_t>& cand, const float* p_T, int64_t capacity);

// The combine weight of a kept assignment with score p (topk_sum: its token's renormalisation sum).
inline float combine_weight(float p, double topk_sum, const Backend::MoeRouteSpec& spec) {
  const double pd = p;
  if (spec.expert_choice) return p;
  return float((spec.renormalize ? pd / topk_sum : pd) * spec.scaling);
}

// CounterRng(seed, "moe_jitter").key(): Backend::moe_jitter_forward's noise stream, for a device port of
// CounterRng::uniform (the cuda files are compiled without OpenMP, so they leave core/rng.h and its
// OpenMP template alone).
uint64_t jitter_stream_key(uint64_t seed);

// log Σ_e exp(l_E[e]) of one row in double, max-subtracted: Backend::logsumexp_rows' row.
inline double logsumexp_row(const float* l_E, int64_t E) {
  double max_logit = -INFINITY;
  for (int64_t e = 0; e < E; ++e) max_logit = std::max(max_logit, double(l_E[e]));
  double denom = 0.0;
  for (int64_t e = 0; e < E; ++e) denom += std::exp(l_E[e] - max_logit);
  return max_logit + std::log(denom);
}

// L_z = mean_t lse_t², summed in token order (0 for T = 0): Backend::moe_z_loss.
inline double z_loss(const double* lse_T, int64_t T) {
  double sum = 0.0;
  for (int64_t t = 0; t < T; ++t) sum += lse_T[t] * lse_T[t];
  return T > 0 ? sum / double(T) : 0.0;
}

}  // namespace upcycle::backend::moe_rules
