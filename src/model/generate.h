// Token generation with the KV cache: greedy (temperature 0) or temperature + nucleus (top-p)
// sampling, reproducible from a seed: the draw for generated token k is
// CounterRng(seed, "generate").uniform(k), independent of threads and backend.
// Invariants: sampling follows HF's warper order (temperature, then top-p over the tempered
// distribution; top-p keeps the most probable tokens whose preceding mass is < top_p, always at
// least one); ties rank the lower id first, so top-p → 0 is exactly greedy (argmax, lowest id).
// Non-goals: top-k, repetition penalties, beam search, batched generation, tokenization.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "model/transformer.h"

namespace upcycle::model {

struct SamplingOptions {
  double temperature = 0.0;  // 0 = greedy; otherwise > 0
  double top_p = 1.0;        // in (0, 1]; 1 = no nucleus filtering
};

struct GenerateOptions {
  int64_t max_new_tokens = 1;    // ≥ 1
  SamplingOptions sampling;
  uint64_t seed = 0;
  std::vector<int32_t> eos_ids;  // generation stops after emitting one of these (it is included)
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // the generated ids, prompt excluded
  bool stopped_at_eos = false;
};

// Index of the largest logit; the lowest id among equal maxima.
int32_t argmax_token(const float* logits_V, int64_t V);
// The token for uniform draw u ∈ [0, 1): argmax when temperature == 0, else inverse-CDF sampling of
// softmax(logits / temperature) restricted to the top-p nucleus (ranked by probability, then id).
int32_t sample_token(const float* logits_V, int64_t V, const SamplingOptions& options, double u);

// Runs the prompt through the model once (KV cache), then generates token by token until
// max_new_tokens or an eos id. Options and prompt ids must be valid (callers validate user input).
GenerateResult generate(Transformer& model, std::span<const int32_t> prompt, const GenerateOptions& options);

// eos_token_id of config.json (config.raw): absent or null → none; an integer → {id}; a list of
// integers → those ids. Anything else throws Error naming `config_file`.
std::vector<int32_t> eos_token_ids(const ModelConfig& config, const std::string& config_file);

}  // namespace upcycle::model
