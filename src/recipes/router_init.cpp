// Router initialisation (see router_init.h).
#include "recipes/router_init.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/rng.h"

namespace upcycle::recipes {

void init_router(float* router_ED, int64_t E, int64_t D, int64_t group, RouterInit init, double std, uint64_t seed,
                 int64_t layer, const std::vector<float>* given) {
  UPCYCLE_CHECK(group >= 1, "router group must be >= 1");
  const size_t n = size_t(E) * size_t(D);
  if (init == RouterInit::kZeros) {
    std::fill(router_ED, router_ED + n, 0.0f);
    return;
  }
  if (init == RouterInit::kGiven) {
    UPCYCLE_CHECK(given && given->size() == n, "given router rows must be [E·D]");
    std::copy(given->begin(), given->end(), router_ED);
    return;
  }
  const CounterRng rng(seed, "layer" + std::to_string(layer) + ".router");
  const double half_width = std * std::sqrt(3.0);
  for (int64_t e = 0; e < E; ++e) {
    const uint64_t row = uint64_t(e / group) * uint64_t(D);
    float* out = router_ED + size_t(e) * size_t(D);
    if (init == RouterInit::kNormal) {
      rng.fill_normal(out, row, size_t(D), 0.0f, float(std));
    } else {
      for (int64_t d = 0; d < D; ++d) out[d] = float((2.0 * rng.uniform(row + uint64_t(d)) - 1.0) * half_width);
    }
  }
}

}  // namespace upcycle::recipes
