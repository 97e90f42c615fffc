// Size limits of the models upcycle accepts, checked when a config.json is parsed or a config built in
// code is validated, before anything is allocated from it. A hostile or corrupt config (10^6 layers,
// 10^5 experts, shapes whose product overflows) then fails at once with an Error naming the key,
// instead of a bad_alloc or an OOM kill deep inside weight listing or model construction.
// The limits sit far above every released model (docs/formats.md "Limits"): per-key values are
// already capped at kMaxConfigInt by the config reader.
// Non-goal: checking that the machine has the memory for a model that is within the limits.
#pragma once

#include <cstdint>
#include <string>

#include "io/model_config.h"

namespace upcycle {

inline constexpr int64_t kMaxLayers = 4096;              // num_hidden_layers (largest released: ~160)
inline constexpr int64_t kMaxExperts = 16384;            // routed experts per MoE layer (largest released: 384)
inline constexpr int64_t kMaxExpertSlots = 1 << 20;      // num_hidden_layers × experts
inline constexpr double kMaxParameters = 17592186044416.0;  // 2^44 (17.6 T) parameters in all
inline constexpr double kMaxTensorElements = 1099511627776.0;  // 2^40 elements in one tensor

// Throws Error(what, file) naming the config.json key whose value breaks a limit.
void check_model_size_limits(const ModelConfig& config, const std::string& file);

}  // namespace upcycle
