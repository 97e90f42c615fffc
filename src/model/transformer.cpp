// Transformer forward/backward (see transformer.h). Residual stream bookkeeping: resid_[l] is the
// input of layer l; a layer writes resid_[l+1] = mid + FFN(norm(mid)) with mid = resid_[l] +
// attn(norm(resid_[l])) kept in acts_[l].mid_TD. Backward keeps one gradient buffer dres_TD_ that
// holds ∂loss/∂resid_[l+1] on entering layer l and ∂loss/∂resid_[l] on leaving it: since every
// backward op accumulates into its input gradient, the residual's identity path costs nothing.
// Shape legend: as in transformer.h.
#include "model/transformer.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/rng.h"
#include "model/rope.h"

namespace upcycle::model {

// Activations one layer saves for its backward pass.
struct Transformer::LayerActs {
  backend::Buffer<float> attn_in_TD, attn_rstd_T;  // input RMSNorm output and its rstd
  backend::Buffer<float> q_raw_TQ, k_raw_TK;       // projections before q/k norm (qk_norm only)
  backend::Buffer<float> q_rstd_TH, k_rstd_TKV;    // q/k norm rstd per (token, head)
  backend::Buffer<float> q_TQ, k_TK, v_TK;         // attention inputs (q, k after norm and RoPE)
  backend::Buffer<float> att_TQ, lse_TH;           // attention output and its log-sum-exp
  backend::Buffer<float> mid_TD;                   // residual stream after attention
  backend::Buffer<float> mlp_in_TD, mlp_rstd_T;    // post-attention RMSNorm output and rstd
  backend::Buffer<float> gate_TF, up_TF, h_TF;     // dense SwiGLU: h = silu(gate) ⊙ up
};

Transformer::Transformer(const ModelConfig& config, backend::Backend& backend, std::string config_file)
    : config_(config), be_(backend) {
  validate_model_config(config_, config_file);
  const std::vector<float> inv_freq = rope_inv_freq(config_.rope, config_.head_dim, config_file);
  inv_freq_.reset(be_, inv_freq.size());
  inv_freq_.upload(inv_freq);
  params_ = TensorStore::for_config(config_, be_);  // grads_ on first use (ensure_grads)
  acts_.resize(size_t(config_.num_hidden_layers));
  resid_.resize(size_t(config_.num_hidden_layers + 1));
  moe_.resize(size_t(config_.num_hidden_layers));
  expert_bias_.resize(size_t(config_.num_hidden_layers));
  if (config_.is_moe()) set_moe_options(moe_options_from_config(config_));
}

TensorStore& Transformer::ensure_grads() {
  if (grads_.specs().empty()) grads_ = TensorStore::for_config(config_, be_);
  return grads_;
}

void Transformer::set_moe_options(const MoeOptions& options) {
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l)
    if (config_.is_moe_layer(l)) moe_[size_t(l)] = std::make_unique<MoeLayer>(be_, options, moe_dims_from_config(config_));
}

double Transformer::auxiliary_loss() const {
  double total = 0;
  for (const auto& layer : moe_)
    if (layer)
      total += layer->options().aux_loss_coef * layer->stats().aux_loss + layer->options().z_loss_coef * layer->stats().z_loss +
               layer->options().dirichlet_coef * layer->stats().dirichlet_loss;
  return total;
}

backend::Buffer<float>& Transformer::expert_bias(int64_t layer) {
  UPCYCLE_CHECK(layer >= 0 && layer < config_.num_hidden_layers && moe_[size_t(layer)],
                "expert_bias() needs an MoE layer index");
  return expert_bias_[size_t(layer)];
}

const backend::Buffer<float>& Transformer::expert_bias(int64_t layer) const {
  UPCYCLE_CHECK(layer >= 0 && layer < config_.num_hidden_layers && moe_[size_t(layer)],
                "expert_bias() needs an MoE layer index");
  return expert_bias_[size_t(layer)];
}

void Transformer::set_expert_bias(int64_t layer, std::span<const float> bias) {
  backend::Buffer<float>& b = expert_bias(layer);
  b.reset(be_, bias.size());
  b.upload(bias);
}

MoeWeights Transformer::moe_weights(int64_t layer) const {
  MoeWeights w = moe_weight_views(params_, config_, layer);
  const backend::Buffer<float>& bias = expert_bias_[size_t(layer)];
  UPCYCLE_CHECK(bias.empty() || int64_t(bias.size()) == config_.num_experts,
                "expert_bias(" + std::to_string(layer) + ") must be empty or hold one value per expert");
  if (!bias.empty()) w.selection_bias_E = bias.data();
  return w;
}

const MoeStats* Transformer::moe_stats(int64_t layer) const {
  const auto& moe = moe_.at(size_t(layer));
  return moe ? &moe->stats() : nullptr;
}

const float* Transformer::hidden_states(int64_t layer) const {
  UPCYCLE_CHECK(layer >= 0 && layer <= config_.num_hidden_layers && !resid_[size_t(layer)].empty(),
                "hidden_states() needs a layer index in [0, L] and a forward() first");
  return resid_[size_t(layer)].data();
}

const float* Transformer::ffn_inputs(int64_t layer) const {
  UPCYCLE_CHECK(layer >= 0 && layer < config_.num_hidden_layers && !acts_.at(size_t(layer)).mlp_in_TD.empty(),
                "ffn_inputs() needs a layer index in [0, L) and a forward() first");
  return acts_[size_t(layer)].mlp_in_TD.data();
}

const float* Transformer::ffn_activations(int64_t layer) const {
  UPCYCLE_CHECK(layer >= 0 && layer < config_.num_hidden_layers && !moe_.at(size_t(layer)) &&
                    !acts_.at(size_t(layer)).h_TF.empty(),
                "ffn_activations() needs a dense layer index in [0, L) and a forward() first");
  return acts_[size_t(layer)].h_TF.data();
}

Transformer::~Transformer() = default;

void Transformer::allocate(int64_t T) {
  const int64_t D = config_.hidden_size, H = config_.num_attention_heads, KV = config_.num_key_value_heads;
  const int64_t Q = H * config_.head_dim, K = KV * config_.head_dim, F = config_.intermediate_size;
  const int64_t V = config_.vocab_size;
  auto size = [this](Buf& v, int64_t n) { v.reset(be_, size_t(n)); };
  for (auto& r : resid_) size(r, T * D);
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    LayerActs& a = acts_[size_t(l)];
    size(a.attn_in_TD, T * D), size(a.attn_rstd_T, T);
    if (config_.qk_norm) size(a.q_raw_TQ, T * Q), size(a.k_raw_TK, T * K), size(a.q_rstd_TH, T * H), size(a.k_rstd_TKV, T * KV);
    size(a.q_TQ, T * Q), size(a.k_TK, T * K), size(a.v_TK, T * K);
    size(a.att_TQ, T * Q), size(a.lse_TH, T * H);
    size(a.mid_TD, T * D), size(a.mlp_in_TD, T * D), size(a.mlp_rstd_T, T);
    const int64_t dense_F = moe_[size_t(l)] ? 0 : F;  // MoE layers keep their activations in MoeLayer
    size(a.gate_TF, T * dense_F), size(a.up_TF, T * dense_F), size(a.h_TF, T * dense_F);
  }
  size(final_x_TD_, T * D), size(final_rstd_T_, T), size(logits_TV_, T * V), size(dlogits_TV_, T * V);
  size(dres_TD_, T * D), size(dnorm_TD_, T * D), size(datt_TQ_, T * Q), size(dq_TQ_, T * Q);
  size(dk_TK_, T * K), size(dv_TK_, T * K);
  if (config_.qk_norm) size(dq_raw_TQ_, T * Q), size(dk_raw_TK_, T * K);
  size(dh_TF_, T * F), size(dgate_TF_, T * F), size(dup_TF_, T * F);
}

backend::AttentionShape Transformer::attention_shape(int64_t layer) const {
  backend::AttentionShape s;
  s.batch = B_;
  s.seq_len = Tseq_;
  s.heads = config_.num_attention_heads;
  s.kv_heads = config_.num_key_value_heads;
  s.head_dim = config_.head_dim;
  s.window = config_.sliding_window_for_layer(layer).value_or(0);
  s.scale = float(1.0 / std::sqrt(double(config_.head_dim)));
  return s;
}

void Transformer::set_token_domains(std::span<const int32_t> domain_T) {
  domains_T_.resize_for_overwrite(be_, domain_T.size());
  domains_T_.upload(domain_T);
  domains_pending_ = true;
}

const float* Transformer::forward(const int32_t* ids, int64_t B, int64_t Tseq) {
  UPCYCLE_CHECK(B > 0 && Tseq > 0, "forward needs at least one token");
  const int64_t T = B * Tseq, D = config_.hidden_size, V = config_.vocab_size;
  for (int64_t t = 0; t < T; ++t) UPCYCLE_CHECK(ids[t] >= 0 && ids[t] < V, "token id out of range (validate input)");
  if (T != T_) allocate(T);
  B_ = B, Tseq_ = Tseq, T_ = T;
  ids_T_.reset(be_, size_t(T));
  ids_T_.upload({ids, size_t(T)});
  domains_active_ = std::exchange(domains_pending_, false);
  UPCYCLE_CHECK(!domains_active_ || int64_t(domains_T_.size()) == T, "set_token_domains: one domain id per token");
  w_ = model_views(std::as_const(params_), config_);

  be_.embedding_forward(resid_[0].data(), w_.embed_VD, ids_T_.data(), T, D);
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    LayerActs& a = acts_[size_t(l)];
    attention_forward(l);  // a.mid_TD = resid_[l] + attention
    be_.rmsnorm_forward(a.mlp_in_TD.data(), a.mlp_rstd_T.data(), a.mid_TD.data(), w_.layers[size_t(l)].mlp_norm_D, T,
                        D, float(config_.rms_norm_eps));
    float* out_TD = resid_[size_t(l + 1)].data();
    ffn_forward(l, out_TD, a.mlp_in_TD.data());
    be_.axpy(out_TD, a.mid_TD.data(), 1.0f, T * D);
  }
  be_.rmsnorm_forward(final_x_TD_.data(), final_rstd_T_.data(), resid_.back().data(), w_.final_norm_D, T, D,
                      float(config_.rms_norm_eps));
  be_.linear_forward(logits_TV_.data(), final_x_TD_.data(), w_.lm_head_VD, nullptr, T, D, V);
  stage_ = Stage::kForward;
  return logits_TV_.data();
}

void Transformer::attention_forward(int64_t layer) {
  const LayerViews<const float*>& w = w_.layers[size_t(layer)];
  LayerActs& a = acts_[size_t(layer)];
  const int64_t T = T_, D = config_.hidden_size, H = config_.num_attention_heads, KV = config_.num_key_value_heads;
  const int64_t S = config_.head_dim, Q = H * S, K = KV * S;
  const float eps = float(config_.rms_norm_eps);
  const float* x_TD = resid_[size_t(layer)].data();

  be_.rmsnorm_forward(a.attn_in_TD.data(), a.attn_rstd_T.data(), x_TD, w.attn_norm_D, T, D, eps);
  float* q_proj_TQ = config_.qk_norm ? a.q_raw_TQ.data() : a.q_TQ.data();
  float* k_proj_TK = config_.qk_norm ? a.k_raw_TK.data() : a.k_TK.data();
  be_.linear_forward(q_proj_TQ, a.attn_in_TD.data(), w.q_proj_QD, w.q_bias_Q, T, D, Q);
  be_.linear_forward(k_proj_TK, a.attn_in_TD.data(), w.k_proj_KD, w.k_bias_K, T, D, K);
  be_.linear_forward(a.v_TK.data(), a.attn_in_TD.data(), w.v_proj_KD, w.v_bias_K, T, D, K);
  if (config_.qk_norm) {  // Qwen3: RMSNorm over each head's S features, before RoPE
    be_.rmsnorm_forward(a.q_TQ.data(), a.q_rstd_TH.data(), q_proj_TQ, w.q_norm_S, T * H, S, eps);
    be_.rmsnorm_forward(a.k_TK.data(), a.k_rstd_TKV.data(), k_proj_TK, w.k_norm_S, T * KV, S, eps);
  }
  be_.rope(a.q_TQ.data(), inv_freq_.data(), T, Tseq_, H, S, 0, backend::RopeDirection::kForward);
  be_.rope(a.k_TK.data(), inv_freq_.data(), T, Tseq_, KV, S, 0, backend::RopeDirection::kForward);
  be_.attention_forward(a.att_TQ.data(), a.lse_TH.data(), a.q_TQ.data(), a.k_TK.data(), a.v_TK.data(),
                        attention_shape(layer));
  be_.linear_forward(a.mid_TD.data(), a.att_TQ.data(), w.o_proj_DQ, w.o_bias_D, T, Q, D);
  be_.axpy(a.mid_TD.data(), x_TD, 1.0f, T * D);
}

void Transformer::ffn_forward(int64_t layer, float* y_TD, const float* x_TD) {
  if (MoeLayer* moe = moe_[size_t(layer)].get()) {
    const uint64_t seed = mix64(phase_seed_ ^ mix64(uint64_t(layer)));  // fresh jitter noise per layer
    try {
      return moe->forward(y_TD, x_TD, T_, moe_weights(layer), phase_, seed,
                          domains_active_ ? domains_T_.data() : nullptr);
    } catch (const backend::NonFiniteRouterScores& e) {  // from the data (weights, a diverged run): a user error
      throw Error("MoE layer " + std::to_string(layer) + ": " + e.what() +
                  " (a NaN or infinity in its router weights or its input)");
    }
  }
  const LayerViews<const float*>& w = w_.layers[size_t(layer)];
  LayerActs& a = acts_[size_t(layer)];
  const int64_t T = T_, D = config_.hidden_size, F = config_.intermediate_size;
  be_.linear_forward(a.gate_TF.data(), x_TD, w.gate_FD, nullptr, T, D, F);
  be_.linear_forward(a.up_TF.data(), x_TD, w.up_FD, nullptr, T, D, F);
  be_.swiglu_forward(a.h_TF.data(), a.gate_TF.data(), a.up_TF.data(), T * F);
  be_.linear_forward(y_TD, a.h_TF.data(), w.down_DF, nullptr, T, F, D);
}

double Transformer::loss(const int32_t* targets) {
  UPCYCLE_CHECK(stage_ != Stage::kNone, "loss() before forward()");
  targets_T_.reset(be_, size_t(T_));
  targets_T_.upload({targets, size_t(T_)});
  const double value =
      be_.cross_entropy(dlogits_TV_.data(), logits_TV_.data(), targets_T_.data(), T_, config_.vocab_size, 1.0f);
  stage_ = Stage::kLoss;
  return value;
}

void Transformer::backward() {
  UPCYCLE_CHECK(stage_ == Stage::kLoss, "backward() needs forward() and loss() first");
  const int64_t T = T_, D = config_.hidden_size, V = config_.vocab_size;
  w_ = model_views(std::as_const(params_), config_);
  g_ = model_views(ensure_grads(), config_);

  dnorm_TD_.zero();
  be_.linear_backward(dnorm_TD_.data(), g_.lm_head_VD, nullptr, dlogits_TV_.data(), final_x_TD_.data(), w_.lm_head_VD,
                      T, D, V);
  dres_TD_.zero();
  be_.rmsnorm_backward(dres_TD_.data(), g_.final_norm_D, dnorm_TD_.data(), resid_.back().data(), w_.final_norm_D,
                       final_rstd_T_.data(), T, D);
  for (int64_t l = config_.num_hidden_layers - 1; l >= 0; --l) {
    LayerActs& a = acts_[size_t(l)];
    // dres holds ∂/∂resid_[l+1] = ∂/∂mid through the identity path; add the FFN branch.
    dnorm_TD_.zero();
    ffn_backward(l, dnorm_TD_.data(), dres_TD_.data(), a.mlp_in_TD.data());
    be_.rmsnorm_backward(dres_TD_.data(), g_.layers[size_t(l)].mlp_norm_D, dnorm_TD_.data(), a.mid_TD.data(),
                         w_.layers[size_t(l)].mlp_norm_D, a.mlp_rstd_T.data(), T, D);
    attention_backward(l, dres_TD_.data());
  }
  // The embedding's backward: each token's gradient row added into its table row (rows repeat).
  be_.scatter_add_rows(g_.embed_VD, dres_TD_.data(), ids_T_.data(), nullptr, T, config_.vocab_size, D);
  // A second backward() without a new loss() would double-count: require the full cycle again.
  stage_ = Stage::kForward;
}

void Transformer::attention_backward(int64_t layer, float* dres_TD) {
  const LayerViews<const float*>& w = w_.layers[size_t(layer)];
  const LayerViews<float*>& g = g_.layers[size_t(layer)];
  LayerActs& a = acts_[size_t(layer)];
  const int64_t T = T_, D = config_.hidden_size, H = config_.num_attention_heads, KV = config_.num_key_value_heads;
  const int64_t S = config_.head_dim, Q = H * S, K = KV * S;

  datt_TQ_.zero();
  be_.linear_backward(datt_TQ_.data(), g.o_proj_DQ, g.o_bias_D, dres_TD, a.att_TQ.data(), w.o_proj_DQ, T, Q, D);
  dq_TQ_.zero(), dk_TK_.zero(), dv_TK_.zero();
  be_.attention_backward(dq_TQ_.data(), dk_TK_.data(), dv_TK_.data(), datt_TQ_.data(), a.q_TQ.data(), a.k_TK.data(),
                         a.v_TK.data(), a.att_TQ.data(), a.lse_TH.data(), attention_shape(layer));
  // RoPE is a rotation: its backward is the inverse rotation of the gradient.
  be_.rope(dq_TQ_.data(), inv_freq_.data(), T, Tseq_, H, S, 0, backend::RopeDirection::kInverse);
  be_.rope(dk_TK_.data(), inv_freq_.data(), T, Tseq_, KV, S, 0, backend::RopeDirection::kInverse);
  float* dq_proj_TQ = dq_TQ_.data();
  float* dk_proj_TK = dk_TK_.data();
  if (config_.qk_norm) {
    dq_raw_TQ_.zero(), dk_raw_TK_.zero();
    be_.rmsnorm_backward(dq_raw_TQ_.data(), g.q_norm_S, dq_TQ_.data(), a.q_raw_TQ.data(), w.q_norm_S,
                         a.q_rstd_TH.data(), T * H, S);
    be_.rmsnorm_backward(dk_raw_TK_.data(), g.k_norm_S, dk_TK_.data(), a.k_raw_TK.data(), w.k_norm_S,
                         a.k_rstd_TKV.data(), T * KV, S);
    dq_proj_TQ = dq_raw_TQ_.data();
    dk_proj_TK = dk_raw_TK_.data();
  }
  dnorm_TD_.zero();
  be_.linear_backward(dnorm_TD_.data(), g.q_proj_QD, g.q_bias_Q, dq_proj_TQ, a.attn_in_TD.data(), w.q_proj_QD, T, D, Q);
  be_.linear_backward(dnorm_TD_.data(), g.k_proj_KD, g.k_bias_K, dk_proj_TK, a.attn_in_TD.data(), w.k_proj_KD, T, D, K);
  be_.linear_backward(dnorm_TD_.data(), g.v_proj_KD, g.v_bias_K, dv_TK_.data(), a.attn_in_TD.data(), w.v_proj_KD, T, D,
                      K);
  be_.rmsnorm_backward(dres_TD, g.attn_norm_D, dnorm_TD_.data(), resid_[size_t(layer)].data(), w.attn_norm_D,
                       a.attn_rstd_T.data(), T, D);
}

void Transformer::ffn_backward(int64_t layer, float* dx_TD, const float* dy_TD, const float* x_TD) {
  if (MoeLayer* moe = moe_[size_t(layer)].get()) {
    MoeGrads grads = moe_grad_views(grads_, config_, layer);
    return moe->backward(dx_TD, grads, dy_TD, x_TD, moe_weights(layer));
  }
  const LayerViews<const float*>& w = w_.layers[size_t(layer)];
  const LayerViews<float*>& g = g_.layers[size_t(layer)];
  LayerActs& a = acts_[size_t(layer)];
  const int64_t T = T_, D = config_.hidden_size, F = config_.intermediate_size;
  dh_TF_.zero();
  be_.linear_backward(dh_TF_.data(), g.down_DF, nullptr, dy_TD, a.h_TF.data(), w.down_DF, T, F, D);
  dgate_TF_.zero(), dup_TF_.zero();
  be_.swiglu_backward(dgate_TF_.data(), dup_TF_.data(), dh_TF_.data(), a.gate_TF.data(), a.up_TF.data(), T * F);
  be_.linear_backward(dx_TD, g.gate_FD, nullptr, dgate_TF_.data(), x_TD, w.gate_FD, T, D, F);
  be_.linear_backward(dx_TD, g.up_FD, nullptr, dup_TF_.data(), x_TD, w.up_FD, T, D, F);
}

}  // namespace upcycle::model
