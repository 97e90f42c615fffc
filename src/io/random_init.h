// Random initialisation of a whole checkpoint, streamed to disk, following HF `_init_weights`:
// Linear weights (projections, FFN, experts, router, shared-expert gate) and embeddings ~
// N(0, initializer_range²), biases 0, RMSNorm weights 1, the pad_token_id row of the embedding 0.
// Element i of canonical weight W is a pure function of (seed, W's canonical name, i), so output is
// byte-identical for any thread count and identical across expert layouts (fused files hold the very
// values the per-expert files hold).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "io/weight_table.h"

namespace upcycle {

struct RandomInitOptions {
  uint64_t seed = 0;
  ExpertLayout layout = ExpertLayout::kPerExpert;
  uint64_t max_shard_bytes = 5'000'000'000ull;
  std::map<std::string, std::string> metadata;  // extra safetensors __metadata__ entries
  bool show_progress = true;
};

// Writes the weights of `config` (in config.dtype) into `dir`; returns the files written.
std::vector<std::string> write_random_weights(const ModelConfig& config, const RandomInitOptions& options,
                                              const std::filesystem::path& dir);

// Element `index` of canonical weight `spec` as write_random_weights produces it (before rounding to
// the file dtype): an independent way for tests to check files.
float random_init_value(const ModelConfig& config, const WeightSpec& spec, uint64_t seed, uint64_t index);

}  // namespace upcycle
