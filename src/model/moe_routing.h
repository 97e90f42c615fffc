// The pure routing decision of an MoE layer and its losses, on host memory: router probabilities
// p[T,E] in, kept assignments sorted by (expert, token) out, plus what backward needs to send
// gradients from the combine weights back to p. Semantics are those documented in moe_layer.h.
// Invariants: deterministic (ties go to the lower expert index for top-k and to the lower token index
// for capacity and expert choice); assignments of expert e are rows offsets[e]..offsets[e+1] and are in
// increasing token order. Routing decisions are constants for differentiation.
// Aux-loss-free balancing: an optional selection bias b[E] changes *which* experts token choice picks
// (top-k of p + b) and nothing else — weights, renormalisation sums, counts_E (so the aux loss) and
// `probability` all stay p of the experts picked; expert choice ignores it (balanced by construction).
// Group-limited selection (n_group > 1, DeepSeek-V3) narrows the candidates by p + b before the top-k.
// Non-goals: device kernels (the decision is cheap, T·E work), updating the bias (train/expert_bias.h).
#pragma once

#include <cstdint>
#include <vector>

#include "model/moe_layer.h"

namespace upcycle::model {

struct Routing {
  int64_t tokens = 0, experts = 0;
  std::vector<int64_t> offsets;    // [E+1]
  std::vector<int32_t> token;      // [A] kept assignments
  std::vector<int32_t> expert;     // [A]
  std::vector<float> weight;       // [A] combine weight
  std::vector<float> probability;  // [A] p[token, expert]
  // Token choice only: each token's top-k experts, best first, before capacity dropping, and the
  // renormalisation denominator Σ_k p of that set.
  int64_t top_k = 0;
  std::vector<int32_t> topk_TK;
  std::vector<double> topk_sum_T;
  std::vector<int64_t> counts_E;   // assignments per expert before dropping (the aux loss's count_e)
  int64_t assignments = 0;         // before dropping
  int64_t dropped = 0;

  int64_t kept() const { return int64_t(token.size()); }
};

// C = ceil(T·k/E · cf) (token choice), C = min(T, ceil(T·cf/E)) (expert choice).
int64_t token_choice_capacity(int64_t T, int64_t top_k, int64_t E, double capacity_factor);
int64_t expert_choice_capacity(int64_t T, int64_t E, double capacity_factor);

// selection_bias_E: null = rank by p alone; otherwise token choice ranks experts by p[t,e] + b[e]
// (float sum; ties to the lower expert index). Capacity dropping still ranks an expert's tokens by p.
Routing route(const float* probs_TE, int64_t T, const MoeOptions& options, const float* selection_bias_E = nullptr);

// dprobs_TE[t,e] += ∂(Σ_a dweight[a]·weight[a])/∂p[t,e]: through the renormalisation denominator (which
// includes top-k assignments later dropped by capacity) and topk_scaling. Routing is held fixed.
void routing_weight_backward(double* dprobs_TE, const Routing& routing, const float* dweight_A,
                             const MoeOptions& options);

// L_aux = E/A · Σ_e count_e·P_e with A = Σ_e count_e (= K·T for token choice), P_e = mean_t p[t,e].
// For expert choice count_e = C for every e, so L_aux ≡ 1 and its gradient vanishes through softmax.
double aux_loss(const float* probs_TE, int64_t T, int64_t E, const std::vector<int64_t>& counts_E);
// dprobs_TE[t,e] += coef · ∂L_aux/∂p[t,e] = coef · E·count_e/(A·T).
void aux_loss_backward(double* dprobs_TE, int64_t T, int64_t E, const std::vector<int64_t>& counts_E, double coef);

// L_z = mean_t lse_t², lse_t = logsumexp_e logits[t,e]; fills lse_T (size T) for the backward.
double z_loss(const float* logits_TE, int64_t T, int64_t E, std::vector<double>& lse_T);
// dlogits_TE[t,e] += coef · 2·lse_t·p[t,e]/T.
void z_loss_backward(float* dlogits_TE, const float* probs_TE, const std::vector<double>& lse_T, int64_t E,
                     double coef);

}  // namespace upcycle::model
