// Which dense FFN neurons (intermediate indices, rows of gate/up, columns of down) each expert takes.
// Contiguous (Megatron virtual groups, He et al. 2024, arXiv 2410.07524): F' = F/G and expert e is
//   shard e mod G, neurons [(e mod G)·F', (e mod G + 1)·F'); experts e with equal ⌊e/G⌋ form a virtual
//   group holding the whole FFN once. Contiguous partition (E not a multiple of G, E + S = G, the naive
//   baseline of carving): expert e is shard S + e, the shared expert shards 0..S−1; no virtual groups.
// Shuffled (Qwen2 report §2.2.3, arXiv 2407.10671): replicate the FFN ⌈E·F'/F⌉ times, permute each
//   copy's neurons with its own random permutation π_c, cut experts consecutively: expert e takes
//   π_c[(e mod G)·F' … +F') of copy c = ⌊e/G⌋ (F' divides F); the leftover of the last copy is unused.
//   With G = 1 this is Drop-Upcycling's per-expert randperm (function-preserving by itself).
// Shared experts (Qwen2-MoE): S·F' neurons j mod F for j < S·F', i.e. shards 0..S−1, replicated
//   when S·F' > F. Permutations come from CounterRng(seed, "layer{l}.shuffle.copy{c}").
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "recipes/convert_spec.h"

namespace upcycle::recipes {

std::vector<int64_t> expert_neurons(ExpertSplit split, int64_t F, int64_t G, int64_t expert, uint64_t seed,
                                    int64_t layer);
std::vector<int64_t> shared_neurons(int64_t F, int64_t G, int64_t S);

// Partial Fisher–Yates on 0..n-1 driven by rng.uniform(i): the first `count` entries of a uniformly
// random permutation. count = n gives a full permutation.
std::vector<int64_t> random_prefix(const CounterRng& rng, int64_t n, int64_t count);
// `count` distinct indices of [0, n), uniformly without replacement, sorted.
std::vector<int64_t> sample_without_replacement(const CounterRng& rng, int64_t n, int64_t count);

}  // namespace upcycle::recipes
