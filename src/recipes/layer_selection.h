// Which decoder layers become MoE layers. Syntax (docs/recipes.md):
//   all | every:N[:OFFSET] (layers l with l ≥ OFFSET and (l − OFFSET) % N == 0; Komatsuzaki's "every
//   other layer from the second" is every:2:1, flaxformer's MIXED layout) | first:N | last:N | i,j,k.
// Invariants: the result is sorted, unique, within [0, L) and non-empty; anything else is an Error
// naming the flag.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace upcycle::recipes {

std::vector<int64_t> select_moe_layers(std::string_view text, int64_t num_layers);

}  // namespace upcycle::recipes
