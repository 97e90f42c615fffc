// Language-model evaluation over a flat token stream cut into non-overlapping windows of seq_len+1
// tokens: window w is tokens[w·(seq_len+1), (w+1)·(seq_len+1)), its first seq_len tokens are the
// inputs and the same tokens shifted by one the targets, so every window predicts seq_len tokens.
// The caller drops the trailing partial window (fewer than seq_len+1 tokens).
// Result: mean token cross-entropy over all predicted tokens (summed per batch in double), perplexity
// exp(loss), and for every MoE layer the routing statistics summed (counts) or token-weighted
// (entropy, top-1 probability, aux loss) over all batches. Non-goals: overlapping/strided windows.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/progress.h"
#include "model/transformer.h"

namespace upcycle::model {

struct LayerRoutingSummary {
  int64_t layer = 0;
  std::vector<int64_t> tokens_per_expert;  // kept assignments per expert, summed over batches
  int64_t assignments = 0, dropped = 0;
  double router_entropy = 0, top1_probability = 0, aux_loss = 0;  // means over tokens
};

struct EvalResult {
  double loss = 0.0;        // mean cross-entropy per predicted token (nats)
  double perplexity = 0.0;  // exp(loss)
  int64_t tokens = 0;       // predicted tokens = sequences · seq_len
  int64_t sequences = 0;
  std::vector<LayerRoutingSummary> routing;  // MoE layers only, in layer order
};

// The range checks of the windowing flags `eval` and `analyze` share (--seq-len ≥ 1, --batch ≥ 1,
// --max-tokens 0 or at least one window's seq_len); throws Error naming the flag.
void check_window_flags(int64_t seq_len, int64_t batch, int64_t max_tokens);

// Windows to evaluate in a stream of `tokens`: its whole windows of seq_len+1, capped by max_tokens
// (0 = no cap). Fewer than one window is an Error naming `path`, whose data `what` describes
// ("val split", "token file").
int64_t count_windows(uint64_t tokens, int64_t seq_len, int64_t max_tokens, const std::string& what,
                      const std::string& path);

// tokens holds whole windows (its size a positive multiple of seq_len+1) of ids < vocab_size;
// `batch` windows run per forward. `progress` (optional) advances by each batch's predicted tokens.
EvalResult evaluate_windows(Transformer& model, std::span<const int32_t> tokens, int64_t seq_len, int64_t batch,
                            Progress* progress);

}  // namespace upcycle::model
