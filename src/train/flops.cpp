// FLOPs per token (contract in flops.h), counted from the config's shapes in closed form.
// Shape legend: V vocab, D hidden, Q = H·S query width, K = KV·S key/value width, F dense FFN width,
// Fe expert width, Fs shared-expert width, E experts.
#include "train/flops.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace upcycle::train {

FlopsPerToken flops_per_token(const ModelConfig& c, int64_t seq_len, double experts_per_token) {
  UPCYCLE_CHECK(seq_len > 0, "flops_per_token: seq_len must be positive");
  UPCYCLE_CHECK(!c.is_moe() || experts_per_token >= 0, "flops_per_token: negative experts per token");
  const int64_t D = c.hidden_size, V = c.vocab_size, S = c.head_dim;
  const int64_t Q = c.num_attention_heads * S, K = c.num_key_value_heads * S;
  const int64_t attention_params = D * Q + 2 * D * K + Q * D;  // q, k, v, o (biases are not matmuls)
  double params = double(V * D);                               // lm_head, tied or not
  double attention = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    params += double(attention_params);
    // QKᵀ and AV: 2·Q·window FLOPs each per token, window = the keys a query sees in a full sequence.
    const int64_t window = std::min(seq_len, c.sliding_window_for_layer(l).value_or(seq_len));
    attention += 4.0 * double(Q) * double(window);
    if (!c.is_moe_layer(l)) {
      params += double(3 * D * c.intermediate_size);
      continue;
    }
    const int64_t Fe = c.moe_intermediate_size, Fs = c.shared_expert_intermediate_size;
    params += double(c.num_experts * D);                              // router
    params += experts_per_token * double(3 * D * Fe);                 // routed experts
    if (Fs > 0) params += double(3 * D * Fs + D);                     // shared expert and its sigmoid gate
  }
  FlopsPerToken f;
  f.matmul_params = std::llround(params);
  f.attention = attention;
  f.forward = 2.0 * double(f.matmul_params) + f.attention;
  f.train = 3.0 * f.forward;
  return f;
}

}  // namespace upcycle::train
