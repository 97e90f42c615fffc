// Compute accounting, so runs of different shapes compare at equal compute. Per token, in FLOPs
// (multiply + add = 2), following Kaplan/Chinchilla/PaLM conventions:
//   matmul params  N_active = every weight matrix a token passes through except the embedding lookup:
//                  attention projections, the router, experts_per_token routed experts (top-k for token
//                  choice, the capacity factor on average for expert choice), shared experts (with
//                  qwen2_moe's [1, D] sigmoid gate), dense FFNs, and lm_head (tied or not: the logits
//                  matmul is done either way); biases and norms are not matmuls. Rounded to an integer
//                  when experts_per_token is fractional.
//   attention      4·L·Q·seq_len per token forward (QKᵀ and AV over the full window; not halved for
//                  causality, as PaLM counts it); a sliding-window layer counts min(seq_len, window)
//                  in place of seq_len
//   forward        2·N_active + attention;   train = 3·forward (backward ≈ 2× forward)
// Non-goals: counting norms, softmax, rope and other element-wise work; activation recomputation.
#pragma once

#include <cstdint>

#include "io/model_config.h"

namespace upcycle::train {

struct FlopsPerToken {
  int64_t matmul_params = 0;  // N_active as above
  double attention = 0;       // forward attention FLOPs per token
  double forward = 0;
  double train = 0;
};

// experts_per_token: top-k (token choice) or capacity factor (expert choice); ignored for dense models.
FlopsPerToken flops_per_token(const ModelConfig& config, int64_t seq_len, double experts_per_token);

}  // namespace upcycle::train
