// KV-cache decoding for Transformer (see transformer.h): the forward pass of n new tokens of one
// sequence at absolute positions [past, past+n), with keys/values of earlier positions read from the
// cache instead of recomputed. The new tokens' k/v projections are written straight into their cache
// rows (rows past..past+n−1 of [max_len, KV, S] are contiguous [n, KV, S]), so no copy op is needed.
// Everything else is forward()'s layer math, FFN included through ffn_forward (MoE-ready); the
// attention path uses its own scratch (dec_*), the FFN the per-layer buffers allocate(n) sizes.
// Invariant: after decode() the activation buffers hold the decode batch; loss()/backward() refuse.
// Non-goals: batched or paged caches, cache eviction beyond max_len.
#include <utility>

#include "core/error.h"
#include "model/transformer.h"

namespace upcycle::model {

void Transformer::reset_cache(int64_t max_len) {
  UPCYCLE_CHECK(max_len > 0, "reset_cache needs max_len > 0");
  const int64_t K = config_.num_key_value_heads * config_.head_dim;
  k_cache_.resize(size_t(config_.num_hidden_layers));
  v_cache_.resize(size_t(config_.num_hidden_layers));
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    k_cache_[size_t(l)].reset(be_, size_t(max_len * K));
    v_cache_[size_t(l)].reset(be_, size_t(max_len * K));
  }
  cache_len_ = 0;
  cache_max_ = max_len;
}

const float* Transformer::decode(const int32_t* ids, int64_t n) {
  UPCYCLE_CHECK(n > 0, "decode needs at least one token");
  UPCYCLE_CHECK(cache_len_ + n <= cache_max_, "decode past the cache capacity (reset_cache with a larger max_len)");
  const int64_t D = config_.hidden_size, V = config_.vocab_size;
  for (int64_t t = 0; t < n; ++t) UPCYCLE_CHECK(ids[t] >= 0 && ids[t] < V, "token id out of range (validate input)");
  if (n != T_) allocate(n);  // resid_, logits and the FFN's buffers
  B_ = 1, Tseq_ = n, T_ = n;
  const int64_t H = config_.num_attention_heads, Q = H * config_.head_dim;
  const int64_t K = config_.num_key_value_heads * config_.head_dim;
  // Scratch whose contents every use overwrites: reallocated only when the size changes.
  auto size = [this](Buf& v, int64_t count) {
    if (v.size() != size_t(count) || v.backend() != &be_) v.reset(be_, size_t(count));
  };
  size(dec_attn_in_TD_, n * D), size(dec_rstd_TH_, n * H), size(dec_q_TQ_, n * Q), size(dec_att_TQ_, n * Q);
  size(dec_mid_TD_, n * D), size(dec_mlp_in_TD_, n * D);
  if (config_.qk_norm) size(dec_q_raw_TQ_, n * Q), size(dec_k_raw_TK_, n * K);
  ids_T_.reset(be_, size_t(n));
  ids_T_.upload({ids, size_t(n)});
  domains_active_ = false;  // decoding computes no training loss
  w_ = model_views(std::as_const(params_), config_);

  be_.embedding_forward(resid_[0].data(), w_.embed_VD, ids_T_.data(), n, D);
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    attention_decode(l);  // dec_mid_TD_ = resid_[l] + attention over the cache
    be_.rmsnorm_forward(dec_mlp_in_TD_.data(), dec_rstd_TH_.data(), dec_mid_TD_.data(),
                        w_.layers[size_t(l)].mlp_norm_D, n, D, float(config_.rms_norm_eps));
    float* out_TD = resid_[size_t(l + 1)].data();
    ffn_forward(l, out_TD, dec_mlp_in_TD_.data());
    be_.axpy(out_TD, dec_mid_TD_.data(), 1.0f, n * D);
  }
  be_.rmsnorm_forward(final_x_TD_.data(), final_rstd_T_.data(), resid_.back().data(), w_.final_norm_D, n, D,
                      float(config_.rms_norm_eps));
  be_.linear_forward(logits_TV_.data(), final_x_TD_.data(), w_.lm_head_VD, nullptr, n, D, V);
  cache_len_ += n;
  stage_ = Stage::kNone;  // decode saves no activations for backward
  return logits_TV_.data();
}

void Transformer::attention_decode(int64_t layer) {
  const LayerViews<const float*>& w = w_.layers[size_t(layer)];
  const int64_t n = T_, past = cache_len_, D = config_.hidden_size, H = config_.num_attention_heads;
  const int64_t KV = config_.num_key_value_heads, S = config_.head_dim, Q = H * S, K = KV * S;
  const float eps = float(config_.rms_norm_eps);
  const float* x_TD = resid_[size_t(layer)].data();
  float* k_new_TK = k_cache_[size_t(layer)].data() + past * K;  // the new tokens' cache rows
  float* v_new_TK = v_cache_[size_t(layer)].data() + past * K;

  be_.rmsnorm_forward(dec_attn_in_TD_.data(), dec_rstd_TH_.data(), x_TD, w.attn_norm_D, n, D, eps);
  float* q_proj_TQ = config_.qk_norm ? dec_q_raw_TQ_.data() : dec_q_TQ_.data();
  float* k_proj_TK = config_.qk_norm ? dec_k_raw_TK_.data() : k_new_TK;
  be_.linear_forward(q_proj_TQ, dec_attn_in_TD_.data(), w.q_proj_QD, w.q_bias_Q, n, D, Q);
  be_.linear_forward(k_proj_TK, dec_attn_in_TD_.data(), w.k_proj_KD, w.k_bias_K, n, D, K);
  be_.linear_forward(v_new_TK, dec_attn_in_TD_.data(), w.v_proj_KD, w.v_bias_K, n, D, K);
  if (config_.qk_norm) {  // Qwen3: per-head RMSNorm before RoPE, as in forward
    be_.rmsnorm_forward(dec_q_TQ_.data(), dec_rstd_TH_.data(), q_proj_TQ, w.q_norm_S, n * H, S, eps);
    be_.rmsnorm_forward(k_new_TK, dec_rstd_TH_.data(), k_proj_TK, w.k_norm_S, n * KV, S, eps);
  }
  // Absolute positions past..past+n−1: rope's pos = t mod n + past.
  be_.rope(dec_q_TQ_.data(), inv_freq_.data(), n, n, H, S, past, backend::RopeDirection::kForward);
  be_.rope(k_new_TK, inv_freq_.data(), n, n, KV, S, past, backend::RopeDirection::kForward);
  be_.attention_decode(dec_att_TQ_.data(), dec_q_TQ_.data(), k_cache_[size_t(layer)].data(),
                       v_cache_[size_t(layer)].data(), past, attention_shape(layer));
  be_.linear_forward(dec_mid_TD_.data(), dec_att_TQ_.data(), w.o_proj_DQ, w.o_bias_D, n, Q, D);
  be_.axpy(dec_mid_TD_.data(), x_TD, 1.0f, n * D);
}

}  // namespace upcycle::model
