// Aux-loss-free bias update (contract in expert_bias.h): checks the sizes, then the backend's
// expert_bias_update op takes the sign step towards the mean load.
#include "train/expert_bias.h"

#include "core/error.h"

namespace upcycle::train {

void update_expert_bias(backend::Backend& backend, std::span<float> bias_E, std::span<const int64_t> load_E,
                        double rate) {
  UPCYCLE_CHECK(bias_E.size() == load_E.size() && !bias_E.empty(), "update_expert_bias: one load per expert");
  backend.expert_bias_update(bias_E.data(), load_E.data(), int64_t(bias_E.size()), rate);
}

}  // namespace upcycle::train
