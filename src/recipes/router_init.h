// Router weights W_r [E, D] of one MoE layer (logits = x·W_rᵀ).
//   normal:σ  W_r ~ N(0, σ²), σ = 0.02 by default (flaxformer's router init, Komatsuzaki et al. 2022).
//   uniform:σ W_r ~ U(−√3σ, √3σ): zero mean, std σ (Drop-Upcycling's `torch_rand_002`).
//   zeros     W_r = 0: p = 1/E exactly, ties resolved towards low expert indices by the engine.
//   given     rows computed elsewhere (prompt-based init, mergekit `hidden`/`cheap_embed`), written as-is.
// Virtual groups (He et al. 2024, arXiv 2410.07524; Megatron upcycling_utils.py): with group size G,
// row e = row ⌊e/G⌋ of a random [E/G, D] matrix, so the G shards of one FFN copy get identical logits.
// Element (g, d) is CounterRng(seed, "layer{l}.router").normal/uniform(g·D + d): G = 1 is plain init.
#pragma once

#include <cstdint>
#include <vector>

#include "recipes/convert_spec.h"

namespace upcycle::recipes {

void init_router(float* router_ED, int64_t E, int64_t D, int64_t group, RouterInit init, double std, uint64_t seed,
                 int64_t layer, const std::vector<float>* given);

}  // namespace upcycle::recipes
