// --verify: does the converted model compute what the dense one did? Both run (cpu backend,
// inference, no jitter) on the same seeded probe batch of token ids; the report gives, per layer,
// the relative deviation of the layer's output (HF hidden_states[l+1], the residual stream leaving
// layer l) and of the logits. Relative = max_i |moe_i − dense_i| / max_i |dense_i| over the batch.
// Depth-tiled models have no layer correspondence: only the logits are compared.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace upcycle::recipes {

struct VerifyOptions {
  int64_t sequences = 2;
  int64_t tokens = 32;  // per sequence, capped at max_position_embeddings
  uint64_t seed = 0;
};

struct VerifyReport {
  std::vector<double> layer_relative;  // empty when the layer counts differ
  double logits_relative = 0;
  double logits_max_abs_diff = 0;
  double logits_max_abs = 0;
  int64_t sequences = 0, tokens = 0;
};

VerifyReport verify_conversion(const std::filesystem::path& dense_dir, const std::filesystem::path& moe_dir,
                               const VerifyOptions& options);

}  // namespace upcycle::recipes
