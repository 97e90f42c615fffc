// Neuron assignment for fine-grained and shuffled experts (see expert_split.h).
#include "recipes/expert_split.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "core/error.h"

namespace upcycle::recipes {

std::vector<int64_t> random_prefix(const CounterRng& rng, int64_t n, int64_t count) {
  UPCYCLE_CHECK(count >= 0 && count <= n, "random_prefix: count outside [0, n]");
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t span = n - i;
    int64_t j = i + std::min<int64_t>(span - 1, static_cast<int64_t>(rng.uniform(uint64_t(i)) * double(span)));
    std::swap(v[size_t(i)], v[size_t(j)]);
  }
  v.resize(static_cast<size_t>(count));
  return v;
}

std::vector<int64_t> sample_without_replacement(const CounterRng& rng, int64_t n, int64_t count) {
  auto v = random_prefix(rng, n, count);
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<int64_t> expert_neurons(ExpertSplit split, int64_t F, int64_t G, int64_t expert, uint64_t seed,
                                    int64_t layer) {
  UPCYCLE_CHECK(G >= 1 && F % G == 0, "expert_neurons: G must divide F");
  const int64_t Fp = F / G, shard = expert % G;
  std::vector<int64_t> out(static_cast<size_t>(Fp));
  if (split == ExpertSplit::kContiguous) {
    std::iota(out.begin(), out.end(), shard * Fp);
    return out;
  }
  const int64_t copy = expert / G;
  CounterRng rng(seed, "layer" + std::to_string(layer) + ".shuffle.copy" + std::to_string(copy));
  auto perm = random_prefix(rng, F, F);
  std::copy(perm.begin() + shard * Fp, perm.begin() + (shard + 1) * Fp, out.begin());
  return out;
}

std::vector<int64_t> shared_neurons(int64_t F, int64_t G, int64_t S) {
  std::vector<int64_t> out(static_cast<size_t>(S * (F / G)));
  for (size_t j = 0; j < out.size(); ++j) out[j] = int64_t(j) % F;
  return out;
}

}  // namespace upcycle::recipes
