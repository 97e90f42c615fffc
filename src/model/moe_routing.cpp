// Routing decisions (token choice top-k with optional capacity, expert choice) and the router losses;
// see moe_routing.h for the contract and moe_layer.h for the semantics.
// Invariant: every ordering is a strict total order (probability, then index), so the result never
// depends on the sort algorithm. Combine weights are computed in double and rounded once.
#include "model/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/error.h"

namespace upcycle::model {
namespace {

// Also checks the selection bias (T = 1).
void check_probs(const float* probs_TE, int64_t T, int64_t E) {
  for (int64_t i = 0; i < T * E; ++i) {
    // A NaN would make the comparisons below an invalid ordering (undefined behaviour in std::sort).
    UPCYCLE_CHECK(std::isfinite(probs_TE[i]), "router probability or bias is not finite at " + std::to_string(i));
  }
}

// `a` ranks before `b` when its probability is higher, or equal with a lower index.
struct ByProbability {
  const float* p;  // indexed by candidate
  bool operator()(int32_t a, int32_t b) const { return p[a] > p[b] || (p[a] == p[b] && a < b); }
};

void set_offsets(Routing& r, const std::vector<std::vector<int32_t>>& kept_tokens_E) {
  r.offsets.assign(size_t(r.experts + 1), 0);
  for (int64_t e = 0; e < r.experts; ++e) {
    r.offsets[size_t(e + 1)] = r.offsets[size_t(e)] + int64_t(kept_tokens_E[size_t(e)].size());
  }
}

// DeepSeek-V3 group limiting: the experts a token may pick, written into `order` (increasing index).
// A group's score is the float sum of its two best ranking scores (HF: topk(2).sum()); the topk_group
// best groups stay eligible, ties to the lower group. One group: every expert.
void eligible_experts(const float* rank_E, const MoeOptions& opt, std::vector<int32_t>& order) {
  const int64_t E = opt.num_experts, G = opt.n_group, per_group = E / G;
  order.resize(size_t(E));
  std::iota(order.begin(), order.end(), 0);
  if (G == 1) return;
  std::vector<float> group_score(static_cast<size_t>(G));
  for (int64_t g = 0; g < G; ++g) {
    std::vector<int32_t> members(order.begin() + g * per_group, order.begin() + (g + 1) * per_group);
    std::partial_sort(members.begin(), members.begin() + 2, members.end(), ByProbability{rank_E});
    group_score[size_t(g)] = rank_E[members[0]] + rank_E[members[1]];
  }
  std::vector<int32_t> groups(static_cast<size_t>(G));
  std::iota(groups.begin(), groups.end(), 0);
  std::partial_sort(groups.begin(), groups.begin() + opt.topk_group, groups.end(), ByProbability{group_score.data()});
  std::sort(groups.begin(), groups.begin() + opt.topk_group);
  order.clear();
  for (int64_t i = 0; i < opt.topk_group; ++i)
    for (int64_t e = 0; e < per_group; ++e) order.push_back(int32_t(groups[size_t(i)] * per_group + e));
}

Routing route_token_choice(const float* probs_TE, int64_t T, const MoeOptions& opt, const float* bias_E) {
  const int64_t E = opt.num_experts, K = opt.top_k;
  Routing r{.tokens = T, .experts = E, .top_k = K};
  r.topk_TK.resize(size_t(T * K));
  r.topk_sum_T.resize(static_cast<size_t>(T));
  r.counts_E.assign(size_t(E), 0);
  // Candidates of each expert in increasing token order.
  std::vector<std::vector<int32_t>> cand_E(static_cast<size_t>(E));
  std::vector<int32_t> order;
  std::vector<float> score_E(bias_E ? size_t(E) : 0);  // p + b: what selection ranks when biased
  for (int64_t t = 0; t < T; ++t) {
    const float* p_E = probs_TE + t * E;
    const float* rank_E = p_E;
    if (bias_E) {
      for (int64_t e = 0; e < E; ++e) score_E[size_t(e)] = p_E[e] + bias_E[e];
      rank_E = score_E.data();
    }
    eligible_experts(rank_E, opt, order);
    std::partial_sort(order.begin(), order.begin() + K, order.end(), ByProbability{rank_E});
    // Sigmoid scores may underflow to 0 for every pick: HF adds 1e-20 to the denominator.
    double sum = opt.scoring == RouterScoring::kSigmoid ? 1e-20 : 0.0;
    for (int64_t k = 0; k < K; ++k) {
      const int32_t e = order[size_t(k)];
      r.topk_TK[size_t(t * K + k)] = e;
      sum += p_E[e];
      ++r.counts_E[size_t(e)];
      cand_E[size_t(e)].push_back(int32_t(t));
    }
    r.topk_sum_T[size_t(t)] = sum;
  }
  r.assignments = T * K;

  const int64_t capacity =
      opt.capacity_factor > 0 ? token_choice_capacity(T, K, E, opt.capacity_factor) : T * K;
  std::vector<std::vector<int32_t>> kept_E(static_cast<size_t>(E));
  std::vector<float> p_T(static_cast<size_t>(T));
  for (int64_t e = 0; e < E; ++e) {
    auto& cand = cand_E[size_t(e)];
    if (int64_t(cand.size()) > capacity) {
      // Keep the `capacity` highest-probability tokens (ties: lower token), then restore token order.
      // By p, not p + b: within one expert the bias is a constant shift, so the order is the same.
      for (int64_t t = 0; t < T; ++t) p_T[size_t(t)] = probs_TE[t * E + e];
      std::sort(cand.begin(), cand.end(), ByProbability{p_T.data()});
      r.dropped += int64_t(cand.size()) - capacity;
      cand.resize(static_cast<size_t>(capacity));
      std::sort(cand.begin(), cand.end());
    }
    kept_E[size_t(e)] = std::move(cand);
  }
  set_offsets(r, kept_E);
  for (int64_t e = 0; e < E; ++e) {
    for (int32_t t : kept_E[size_t(e)]) {
      const double p = probs_TE[t * E + e];
      const double w = opt.topk_norm == TopkNorm::kRenormalize ? p / r.topk_sum_T[size_t(t)] : p;
      r.token.push_back(t);
      r.expert.push_back(int32_t(e));
      r.probability.push_back(float(p));
      r.weight.push_back(float(w * opt.topk_scaling));
    }
  }
  return r;
}

Routing route_expert_choice(const float* probs_TE, int64_t T, const MoeOptions& opt) {
  const int64_t E = opt.num_experts;
  const int64_t C = expert_choice_capacity(T, E, opt.capacity_factor);
  Routing r{.tokens = T, .experts = E};
  r.counts_E.assign(size_t(E), C);
  r.assignments = E * C;
  std::vector<std::vector<int32_t>> kept_E(static_cast<size_t>(E));
  std::vector<float> p_T(static_cast<size_t>(T));
  std::vector<int32_t> order(static_cast<size_t>(T));
  for (int64_t e = 0; e < E; ++e) {
    for (int64_t t = 0; t < T; ++t) p_T[size_t(t)] = probs_TE[t * E + e];
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + C, order.end(), ByProbability{p_T.data()});
    kept_E[size_t(e)].assign(order.begin(), order.begin() + C);
    std::sort(kept_E[size_t(e)].begin(), kept_E[size_t(e)].end());
  }
  set_offsets(r, kept_E);
  for (int64_t e = 0; e < E; ++e) {
    for (int32_t t : kept_E[size_t(e)]) {
      r.token.push_back(t);
      r.expert.push_back(int32_t(e));
      r.probability.push_back(probs_TE[t * E + e]);
      r.weight.push_back(probs_TE[t * E + e]);
    }
  }
  return r;
}

}  // namespace

int64_t token_choice_capacity(int64_t T, int64_t top_k, int64_t E, double capacity_factor) {
  // Megatron's order of operations: ceil(tokens·k / E · cf), in double.
  return int64_t(std::ceil(double(T * top_k) / double(E) * capacity_factor));
}

int64_t expert_choice_capacity(int64_t T, int64_t E, double capacity_factor) {
  return std::min<int64_t>(T, int64_t(std::ceil(double(T) / double(E) * capacity_factor)));
}

Routing route(const float* probs_TE, int64_t T, const MoeOptions& options, const float* selection_bias_E) {
  UPCYCLE_CHECK(options.num_experts > 0 && T >= 0, "route: bad sizes");
  check_probs(probs_TE, T, options.num_experts);
  if (options.mode == RoutingMode::kExpertChoice) {  // balanced by construction: the bias plays no part
    UPCYCLE_CHECK(options.capacity_factor > 0, "expert choice needs capacity_factor > 0");
    return route_expert_choice(probs_TE, T, options);
  }
  UPCYCLE_CHECK(options.top_k >= 1 && options.top_k <= options.num_experts, "route: top_k outside [1, E]");
  const int64_t G = options.n_group;
  UPCYCLE_CHECK(G >= 1 && options.num_experts % G == 0 && (G == 1 || options.num_experts / G >= 2) &&
                    options.topk_group >= 1 && options.topk_group <= G &&
                    options.top_k <= options.topk_group * (options.num_experts / G),
                "route: expert groups must split E evenly (≥ 2 per group) and hold top_k experts");
  if (selection_bias_E) check_probs(selection_bias_E, 1, options.num_experts);
  return route_token_choice(probs_TE, T, options, selection_bias_E);
}

void routing_weight_backward(double* dprobs_TE, const Routing& r, const float* dweight_A, const MoeOptions& opt) {
  const int64_t E = r.experts;
  if (opt.mode == RoutingMode::kExpertChoice || opt.topk_norm == TopkNorm::kNone) {
    const double scale = opt.mode == RoutingMode::kExpertChoice ? 1.0 : opt.topk_scaling;
    for (int64_t a = 0; a < r.kept(); ++a) {
      dprobs_TE[r.token[size_t(a)] * E + r.expert[size_t(a)]] += scale * dweight_A[a];
    }
    return;
  }
  // w_a = s·p_a/S_t with S_t = Σ_{j ∈ topk(t)} p_j:
  //   ∂(Σ_a g_a w_a)/∂p_j = s·g_j·[j kept]/S_t − s·(Σ_{a of t} g_a·p_a)/S_t²   for every j ∈ topk(t).
  const double s = opt.topk_scaling;
  std::vector<double> gp_T(size_t(r.tokens), 0.0);
  for (int64_t a = 0; a < r.kept(); ++a) {
    const int64_t t = r.token[size_t(a)];
    const double S = r.topk_sum_T[size_t(t)];
    dprobs_TE[t * E + r.expert[size_t(a)]] += s * dweight_A[a] / S;
    gp_T[size_t(t)] += double(dweight_A[a]) * r.probability[size_t(a)];
  }
  for (int64_t t = 0; t < r.tokens; ++t) {
    const double S = r.topk_sum_T[size_t(t)];
    for (int64_t k = 0; k < r.top_k; ++k) {
      dprobs_TE[t * E + r.topk_TK[size_t(t * r.top_k + k)]] -= s * gp_T[size_t(t)] / (S * S);
    }
  }
}

double aux_loss(const float* probs_TE, int64_t T, int64_t E, const std::vector<int64_t>& counts_E) {
  const int64_t A = std::accumulate(counts_E.begin(), counts_E.end(), int64_t{0});
  if (T == 0 || A == 0) return 0.0;
  double loss = 0.0;
  for (int64_t e = 0; e < E; ++e) {
    double mean_p = 0.0;
    for (int64_t t = 0; t < T; ++t) mean_p += probs_TE[t * E + e];
    loss += double(counts_E[size_t(e)]) * mean_p / double(T);
  }
  return loss * double(E) / double(A);
}

void aux_loss_backward(double* dprobs_TE, int64_t T, int64_t E, const std::vector<int64_t>& counts_E, double coef) {
  const int64_t A = std::accumulate(counts_E.begin(), counts_E.end(), int64_t{0});
  if (T == 0 || A == 0 || coef == 0.0) return;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t e = 0; e < E; ++e) {
      dprobs_TE[t * E + e] += coef * double(E) * double(counts_E[size_t(e)]) / (double(A) * double(T));
    }
  }
}

double z_loss(const float* logits_TE, int64_t T, int64_t E, std::vector<double>& lse_T) {
  lse_T.assign(size_t(T), 0.0);
  double sum = 0.0;
  for (int64_t t = 0; t < T; ++t) {
    const float* l_E = logits_TE + t * E;
    double max_logit = -INFINITY;
    for (int64_t e = 0; e < E; ++e) max_logit = std::max(max_logit, double(l_E[e]));
    double denom = 0.0;
    for (int64_t e = 0; e < E; ++e) denom += std::exp(l_E[e] - max_logit);
    lse_T[size_t(t)] = max_logit + std::log(denom);
    sum += lse_T[size_t(t)] * lse_T[size_t(t)];
  }
  return T > 0 ? sum / double(T) : 0.0;
}

void z_loss_backward(float* dlogits_TE, const float* probs_TE, const std::vector<double>& lse_T, int64_t E,
                     double coef) {
  const int64_t T = int64_t(lse_T.size());
  if (T == 0 || coef == 0.0) return;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t e = 0; e < E; ++e) {
      const double grad = coef * 2.0 * lse_T[size_t(t)] * probs_TE[t * E + e] / double(T);
      dlogits_TE[t * E + e] = float(dlogits_TE[t * E + e] + grad);
    }
  }
}

}  // namespace upcycle::model
