// Rotary embedding frequencies inv_freq[i], i < S/2, for a head dim S and a RopeConfig, as
// transformers' modeling_rope_utils computes them:
//   default  inv_freq[i] = theta^(−2i/S)
//   linear   default / factor
//   llama3   per frequency by wavelength w = 2π/inv_freq, with L = original_max_position_embeddings:
//            w > L/low_freq_factor → inv_freq/factor; w < L/high_freq_factor → unchanged; otherwise
//            (1−s)·inv_freq/factor + s·inv_freq with s = (L/w − low)/(high − low).
// Computed in double, stored as float (HF computes in fp32; the difference is last-bit rounding).
// Non-goals: dynamic/yarn/longrope and other types (an Error names the type), attention scaling.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/model_config.h"

namespace upcycle::model {

// `config_file` labels errors: an unsupported rope type or llama3 parameters that make no sense.
std::vector<float> rope_inv_freq(const RopeConfig& rope, int64_t head_dim, const std::string& config_file);

}  // namespace upcycle::model
