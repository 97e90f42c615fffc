// One Mixture-of-Experts FFN block: route → dispatch → experts → combine, with load-balancing and
// z losses and routing statistics, forward and backward, written against backend ops only.
// Routing (HF semantics, fp32): logits = x·W_rᵀ, p = softmax(logits).
//   token choice: each token takes its top-k experts by p; weights p_k, divided by Σ p_k when
//     TopkNorm::kRenormalize (= Mixtral's top-k-logits-then-softmax), times topk_scaling; dropless
//     unless capacity_factor > 0: capacity C = ceil(T·k/E · cf) per expert, an expert keeps its C
//     highest-probability assignments and the rest are dropped (those tokens get nothing from that
//     expert; the residual carries them). Kept weights are not renormalised after dropping (Megatron).
//     Aux-loss-free balancing (DeepSeek-V3): with a selection bias b[E] (MoeWeights::selection_bias_E)
//     the top-k are taken by p + b instead; the bias only picks — combine weights, renormalisation,
//     the aux loss's counts, capacity ranking and the statistics all still use p.
//   expert choice (Zhou et al. 2022): each expert takes its C = ceil(T·cf/E) highest-p tokens (weight
//     p[t,e]); a token may get 0…E experts. It sees the whole batch, so in a causal LM it leaks
//     information from future tokens: for the paper's comparisons only. It ignores a selection bias.
//   sigmoid scoring (DeepSeek-V3 / dots1, RouterScoring::kSigmoid): p = sigmoid(logits) per expert
//     instead of the softmax; selection ranks s = p + b (b = the selection bias, HF's
//     e_score_correction_bias). Group-limited: the E experts form n_group equal groups, a group scores the
//     sum of its two best s, only the topk_group best groups (ties: lower group) are eligible, and the
//     top-k is taken among their experts. Weights: p of the chosen, ÷ Σ_k p under kRenormalize, ×
//     topk_scaling (= routed_scaling_factor). No aux or z loss in this mode (both reported 0; balance
//     comes from the bias: train --expert-bias-rate); the statistics read p normalised per token.
// Experts: y_e = W2 (silu(W1 x) ⊙ W3 x) with HF's [out, in] weights; output y = Σ w·y_e, plus for
// Qwen2-MoE a shared expert sigmoid(x·w_gᵀ)·FFN_s(x), for dots1 an ungated one FFN_s(x).
// Losses, reported unscaled and added to the objective times their coefficients by backward():
//   aux (Switch/GShard, normalised so perfect balance = 1): L_aux = E/(K·T) · Σ_e count_e · P_e,
//     count_e = top-k assignments to e (before capacity dropping), P_e = mean_t p[t,e];
//     HF's Mixtral/Qwen load_balancing_loss_func equals K·L_aux (so HF coef c ↔ ours K·c);
//     expert choice counts its C picks per expert (K·T → E·C), so L_aux ≡ 1 with no gradient there;
//   z (ST-MoE): L_z = mean_t (logsumexp_e logits[t,e])²;
//   Dirichlet-prior shaping (DPSL, dirichlet_prior.h): L_dir = (1/E) Σ_e Cramér–von-Mises distance of
//     the batch's p[·,e] to Beta(α_e, Σα − α_e); computed when dirichlet_alpha_E is set (also at coef 0,
//     so a run can log it), differentiated when dirichlet_coef ≠ 0. Per-domain priors
//     (dirichlet_domain_alpha_DE): forward's domain_T gives each token's domain, and L_dir is the
//     token-weighted sum over the batch's domains (dirichlet_prior.h, DirichletPriorTable); without domain_T
//     (evaluation, decoding) it is not computed (0, no gradient).
// Shape legend: T tokens, D model, E experts, K top-k, F expert width, Fs shared width, A assignments.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "io/model_config.h"
#include "model/moe_options.h"

namespace upcycle::model {

// Views of the layer's weights (fp32, backend memory). Per-expert pointers may point into a fused
// [E, 2F, D] buffer or into separate tensors alike.
struct MoeWeights {
  const float* router_ED = nullptr;
  std::vector<const float*> gate_FD, up_FD, down_DF;  // one per expert
  const float* shared_gate_FsD = nullptr;
  const float* shared_up_FsD = nullptr;
  const float* shared_down_DFs = nullptr;
  const float* shared_expert_gate_1D = nullptr;  // sigmoid gate; null = ungated shared expert
  // Aux-loss-free balancing: token choice selects top-k by p + b (b: [E]); null = by p. No gradient,
  // updated outside the model (train/expert_bias.h); a weight only in dots1 (e_score_correction_bias),
  // training state otherwise. Expert choice ignores it.
  const float* selection_bias_E = nullptr;
};

// Gradient buffers with the same layout; backward accumulates (+=) into them. Null entries are skipped.
struct MoeGrads {
  float* router_ED = nullptr;
  std::vector<float*> gate_FD, up_FD, down_DF;
  float* shared_gate_FsD = nullptr;
  float* shared_up_FsD = nullptr;
  float* shared_down_DFs = nullptr;
  float* shared_expert_gate_1D = nullptr;
};

struct MoeStats {
  std::vector<int64_t> tokens_per_expert;  // kept assignments per expert
  int64_t assignments = 0;                 // before dropping
  int64_t dropped = 0;                     // assignments removed by capacity
  double router_entropy = 0;               // mean_t H(p_t), nats
  double top1_probability = 0;             // mean_t max_e p[t,e]
  double aux_loss = 0;                     // unscaled L_aux
  double z_loss = 0;                       // unscaled L_z
  double dirichlet_loss = 0;               // unscaled L_dir (0 when no prior is set)
};

// Routing options a checkpoint's config implies for inference: its expert count, top-k, top-k
// normalisation, (Mixtral) router jitter and (dots1) sigmoid scoring, groups and scaling factor;
// token choice, dropless, no auxiliary losses.
MoeOptions moe_options_from_config(const ModelConfig& config);
MoeDims moe_dims_from_config(const ModelConfig& config);

class MoeLayer {
 public:
  MoeLayer(backend::Backend& backend, MoeOptions options, MoeDims dims);

  // y[T,D] = MoE(x[T,D]) (overwrites y). Keeps the activations backward needs until the next forward.
  // `seed` drives the jitter noise (counter-based: same seed → same noise). domain_T[T]: each token's
  // domain, read by per-domain Dirichlet priors only (null: none, the prior's loss is then 0).
  void forward(float* y, const float* x, int64_t T, const MoeWeights& w, Phase phase, uint64_t seed,
               const int32_t* domain_T = nullptr);
  // dx[T,D] += ∂/∂x, grads += ∂/∂weights of  Σ dy⊙y + aux_loss_coef·L_aux + z_loss_coef·L_z
  //   + dirichlet_coef·L_dir.
  void backward(float* dx, MoeGrads& grads, const float* dy, const float* x, const MoeWeights& w);

  const MoeStats& stats() const { return stats_; }
  const MoeOptions& options() const { return options_; }

 private:
  backend::Backend& backend_;
  MoeOptions options_;
  MoeDims dims_;
  MoeStats stats_;
  // Saved activations and routing, in backend memory (see the implementation file).
  struct Saved;
  std::shared_ptr<Saved> saved_;

  void router_forward(const float* x, const MoeWeights& w, Phase phase, uint64_t seed);
  void dirichlet_forward(const int32_t* domain_T);
  void experts_forward(float* y, const float* x, const MoeWeights& w);
  void shared_forward(float* y, const float* x, const MoeWeights& w);
  void fill_stats();
  void shared_backward(float* dx, MoeGrads& grads, const float* dy, const float* x, const MoeWeights& w);
  // Returns ∂L/∂(combine weight) per kept assignment, for the router.
  backend::Buffer<float> experts_backward(float* dx, MoeGrads& grads, const float* dy, const MoeWeights& w);
  void router_backward(float* dx, MoeGrads& grads, const backend::Buffer<float>& dweight_A, const float* x,
                       const MoeWeights& w);
};

}  // namespace upcycle::model
