// Ranking rules of the routing decision; contract in moe_route_rules.h.
#include "backend/moe_route_rules.h"

#include <algorithm>
#include <numeric>

#include "core/rng.h"

namespace upcycle::backend::moe_rules {
namespace {

// DeepSeek-V3 group limiting: the experts a token may pick, written into `order` (increasing index).
// A group's score is the float sum of its two best ranking scores (HF: topk(2).sum()); the topk_group
// best groups stay eligible, ties to the lower group. One group: every expert.
void eligible_experts(const float* rank_E, const Backend::MoeRouteSpec& spec, std::vector<int32_t>& order) {
  const int64_t E = spec.experts, G = spec.n_group, per_group = E / G;
  order.resize(size_t(E));
  std::iota(order.begin(), order.end(), 0);
  if (G == 1) return;
  std::vector<float> group_score(static_cast<size_t>(G));
  for (int64_t g = 0; g < G; ++g) {
    std::vector<int32_t> members(order.begin() + g * per_group, order.begin() + (g + 1) * per_group);
    std::partial_sort(members.begin(), members.begin() + 2, members.end(), ByScore{rank_E});
    group_score[size_t(g)] = rank_E[members[0]] + rank_E[members[1]];
  }
  std::vector<int32_t> groups(static_cast<size_t>(G));
  std::iota(groups.begin(), groups.end(), 0);
  std::partial_sort(groups.begin(), groups.begin() + spec.topk_group, groups.end(), ByScore{group_score.data()});
  std::sort(groups.begin(), groups.begin() + spec.topk_group);
  order.clear();
  for (int64_t i = 0; i < spec.topk_group; ++i)
    for (int64_t e = 0; e < per_group; ++e) order.push_back(int32_t(groups[size_t(i)] * per_group + e));
}

}  // namespace

double token_topk(int32_t* topk_K, const float* p_E, const float* rank_E, const Backend::MoeRouteSpec& spec,
                  std::vector<int32_t>& order) {
  eligible_experts(rank_E, spec, order);
  std::partial_sort(order.begin(), order.begin() + spec.top_k, order.end(), ByScore{rank_E});
  // Sigmoid scores may underflow to 0 for every pick: HF adds 1e-20 to the denominator.
  double sum = spec.sigmoid_scores ? 1e-20 : 0.0;
  for (int64_t k = 0; k < spec.top_k; ++k) {
    topk_K[k] = order[size_t(k)];
    sum += p_E[order[size_t(k)]];
  }
  return sum;
}

int64_t keep_capacity(std::vector<int32_t>& cand, const float* p_T, int64_t capacity) {
  if (int64_t(cand.size()) <= capacity) return 0;
  std::sort(cand.begin(), cand.end(), ByScore{p_T});
  const int64_t dropped = int64_t(cand.size()) - capacity;
  cand.resize(static_cast<size_t>(capacity));
  std::sort(cand.begin(), cand.end());
  return dropped;
}

uint64_t jitter_stream_key(uint64_t seed) { return CounterRng(seed, "moe_jitter").key(); }

}  // namespace upcycle::backend::moe_rules
