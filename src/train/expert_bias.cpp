// Aux-loss-free bias update (contract in expert_bias.h): a sign step towards the mean load.
#include "train/expert_bias.h"

#include "core/error.h"

namespace upcycle::train {

void update_expert_bias(std::span<float> bias_E, std::span<const int64_t> load_E, double rate) {
  UPCYCLE_CHECK(bias_E.size() == load_E.size() && !bias_E.empty(), "update_expert_bias: one load per expert");
  int64_t total = 0;
  for (int64_t load : load_E) total += load;
  // Compare load_e·E with Σ load instead of load_e with the mean: exact in integers, so an expert at
  // exactly the mean never moves.
  const int64_t E = int64_t(load_E.size());
  for (size_t e = 0; e < bias_E.size(); ++e) {
    const int64_t scaled = load_E[e] * E;
    const double sign = scaled < total ? 1.0 : (scaled > total ? -1.0 : 0.0);
    bias_E[e] = float(double(bias_E[e]) + rate * sign);
  }
}

}  // namespace upcycle::train
