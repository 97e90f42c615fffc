// The decoder-only transformer of the llama/mistral/qwen2/qwen3 families, forward and backward in
// llm.c style: explicit per-layer passes over activations saved by forward, no autograd.
// Per layer: x += o_proj(attn(rope(qk_norm(q,k)), v)) over RMSNorm(x); x += FFN(RMSNorm(x)); then a
// final RMSNorm, lm_head (or the tied embedding) and mean cross-entropy over targets ≥ 0.
// Every computation is a backend op (backend.h): the model owns buffers and order, nothing else.
// Invariants: loss() follows forward(); backward() follows loss() and *accumulates* into grads()
// (zero_grads() first for a fresh gradient; repeated micro-batches sum). The gradient store is
// allocated (zeroed) at its first use — grads(), zero_grads() or backward() — so a model that only
// runs forward holds its parameters alone (half the memory). Activations live until the
// next forward(). The FFN of a layer is one call (ffn_forward/ffn_backward, y overwritten, dx
// accumulated) so an MoE block can take the dense MLP's place layer by layer.
// MoE layers (config.is_moe_layer) run a MoeLayer in place of the dense MLP; its routing options start
// from the config (moe_options_from_config) and can be changed with set_moe_options (training: aux and
// z-loss coefficients, capacity, expert choice…). The MoE losses' gradients enter backward() with
// their coefficients; auxiliary_loss() reports their weighted sum for the last forward.
// Aux-loss-free balancing: expert_bias(l) is MoE layer l's selection bias (moe_layer.h), empty (no
// bias) until a caller sizes it to E; forward, backward and decode then route that layer with it.
// KV-cache decoding (transformer_decode.cpp) runs the same layer math one sequence at a time.
// Memory: every buffer (parameters, gradients, activations, backward scratch, logits, inv_freq, the
// KV cache, expert biases, token ids/targets) is a backend::Buffer of the model's Backend. Pointers
// returned here (forward/decode logits, hidden_states, ffn_inputs, ffn_activations, params().find)
// are backend pointers: host code reads them through backend::host_view(backend(), …), which aliases
// on host backends and downloads otherwise (docs/engine.md, "Memory and ownership").
// Non-goals: batched decoding, mixed precision, dropout.
// Shape legend: B sequences, Tseq tokens each, T = B·Tseq, D model, H heads, KV kv heads, S head dim,
// Q = H·S, K = KV·S, F ffn width, V vocab.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "backend/host_view.h"
#include "io/model_config.h"
#include "model/model_views.h"
#include "model/moe_layer.h"
#include "model/parameters.h"

namespace upcycle::model {

class Transformer {
 public:
  // Parameters start at zero (load them into params()). `config_file` labels config errors
  // (unsupported rope type, MoE layers).
  Transformer(const ModelConfig& config, backend::Backend& backend, std::string config_file = "config.json");
  ~Transformer();
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  const ModelConfig& config() const { return config_; }
  TensorStore& params() { return params_; }
  const TensorStore& params() const { return params_; }
  TensorStore& grads() { return ensure_grads(); }
  const TensorStore& grads() const { return grads_; }  // empty until the first non-const use
  backend::Backend& backend() const { return be_; }

  // logits_TV for host ids[B·Tseq] (row-major by sequence), a backend pointer valid until the next
  // forward (read it with backend::host_view). Ids must lie in [0, vocab_size): callers validate user
  // input, a bad id here is a bug (UPCYCLE_CHECK).
  const float* forward(const int32_t* ids, int64_t B, int64_t Tseq);
  // Mean cross-entropy of the last forward's logits over host targets[T] ≥ 0 (−1 = ignored); also
  // prepares dlogits for backward(). The loss is the op's return value: no readback.
  double loss(const int32_t* targets);
  // grads += ∂loss/∂params.
  void backward();
  void zero_grads() { ensure_grads().zero(); }

  // MoE routing options for every MoE layer (the same for all); resets saved activations.
  void set_moe_options(const MoeOptions& options);
  // Per-token domain ids (domain_T[B·Tseq], row-major by sequence) for the next forward() only, read by
  // per-domain Dirichlet priors (MoeOptions::dirichlet_domain_alpha_DE), uploaded to backend memory
  // here (once per forward). A forward without them (and decode) computes no such loss: training
  // passes them before each forward, evaluation does not.
  void set_token_domains(std::span<const int32_t> domain_T);
  // Training applies router jitter, seeded by `seed` (mixed with the layer index): pass a new seed
  // per step for fresh noise.
  void set_phase(Phase phase, uint64_t seed = 0) { phase_ = phase, phase_seed_ = seed; }
  // Σ over MoE layers of aux_loss_coef·L_aux + z_loss_coef·L_z + dirichlet_coef·L_dir for the last
  // forward (0 for dense models).
  double auxiliary_loss() const;
  // MoE layer `layer`'s selection bias b[E] (aux-loss-free balancing), in backend memory: empty =
  // none (the default); reset it to E (zeros) on backend() to enable it, then update it between steps
  // (host code: download, change, upload). It survives set_moe_options. UPCYCLE_CHECK: `layer` must be
  // an MoE layer; a size other than 0 or E fails at the next forward.
  backend::Buffer<float>& expert_bias(int64_t layer);
  const backend::Buffer<float>& expert_bias(int64_t layer) const;
  // expert_bias(layer) := host `bias` (uploaded; empty = no bias).
  void set_expert_bias(int64_t layer, std::span<const float> bias);
  // Routing statistics of MoE layer `layer` from the last forward; nullptr for dense layers.
  const MoeStats* moe_stats(int64_t layer) const;
  // The residual stream entering layer `layer` ([T, D] of the last forward or decode), for
  // 0 ≤ layer ≤ L; layer L is the last layer's output before the final norm. Entries 0..L-1 equal
  // HF's output_hidden_states[0..L-1] (HF's last entry has the final norm applied).
  const float* hidden_states(int64_t layer) const;
  // The input of layer `layer`'s FFN ([T, D] of the last forward): the post-attention RMSNorm output,
  // what an MoE layer's router multiplies (HF's input to `mlp`), for 0 ≤ layer < L.
  const float* ffn_inputs(int64_t layer) const;
  // The SwiGLU intermediate h = silu(gate_proj x) ⊙ up_proj x of dense layer `layer`'s FFN ([T, F] of
  // the last forward): the neuron activations that training-free carving profiles (recipes/carving.h).
  const float* ffn_activations(int64_t layer) const;

  // KV-cache decoding of one sequence. reset_cache(max_len) empties the cache and sizes it for
  // max_len positions; decode(ids, n) appends n tokens at positions [cache_length(), +n) and returns
  // their logits_nV, equal (up to fp32 summation order) to the matching rows of a full forward over
  // the whole sequence. Both share the activation buffers, so a forward() invalidates nothing in the
  // cache but a decode() invalidates the last forward's logits; loss()/backward() need a new forward().
  void reset_cache(int64_t max_len);
  const float* decode(const int32_t* ids, int64_t n);
  int64_t cache_length() const { return cache_len_; }
  int64_t cache_capacity() const { return cache_max_; }

 private:
  struct LayerActs;
  void allocate(int64_t T);
  void attention_forward(int64_t layer);
  void attention_backward(int64_t layer, float* dres_TD);
  void attention_decode(int64_t layer);  // decode()'s attention: k/v of the new tokens go to the cache
  // y_TD = FFN_layer(x_TD) (overwritten); dx_TD += ∂/∂x and weight grads += ∂/∂w of Σ dy⊙y.
  void ffn_forward(int64_t layer, float* y_TD, const float* x_TD);
  void ffn_backward(int64_t layer, float* dx_TD, const float* dy_TD, const float* x_TD);
  backend::AttentionShape attention_shape(int64_t layer) const;
  MoeWeights moe_weights(int64_t layer) const;  // views plus the layer's selection bias, if any
  TensorStore& ensure_grads();                   // allocates the zeroed gradient store once

  ModelConfig config_;
  backend::Backend& be_;
  std::vector<std::unique_ptr<MoeLayer>> moe_;  // per layer; null for dense layers
  std::vector<backend::Buffer<float>> expert_bias_;  // per layer; empty = no selection bias
  Phase phase_ = Phase::kInference;
  uint64_t phase_seed_ = 0;
  TensorStore params_, grads_;
  backend::Buffer<float> inv_freq_;  // RoPE frequencies, computed on the host once and uploaded
  ModelViews<const float*> w_;  // refreshed at each forward/backward
  ModelViews<float*> g_;

  // Sizes of the current batch.
  int64_t B_ = 0, Tseq_ = 0, T_ = 0;
  enum class Stage { kNone, kForward, kLoss } stage_ = Stage::kNone;
  backend::Buffer<int32_t> ids_T_, targets_T_;  // the host's ids/targets, uploaded for the ops
  backend::Buffer<int32_t> domains_T_;  // set_token_domains' ids, uploaded
  bool domains_pending_ = false;         // set_token_domains was called for the next forward
  bool domains_active_ = false;          // the current forward reads domains_T_
  using Buf = backend::Buffer<float>;
  std::vector<Buf> resid_;  // resid_[l] = input of layer l, [T, D]; resid_[L] = final
  std::vector<LayerActs> acts_;
  Buf final_x_TD_, final_rstd_T_, logits_TV_, dlogits_TV_;
  // Backward scratch, reused by every layer.
  Buf dres_TD_, dnorm_TD_, datt_TQ_, dq_TQ_, dk_TK_, dv_TK_, dq_raw_TQ_, dk_raw_TK_;
  Buf dh_TF_, dgate_TF_, dup_TF_;
  // KV cache for decode(): per layer [cache_max_, KV, S] (keys after q/k norm and RoPE).
  std::vector<Buf> k_cache_, v_cache_;
  int64_t cache_len_ = 0, cache_max_ = 0;
  // decode() scratch shared by all layers (decoding keeps nothing for backward); rstd_TH also
  // serves the T- and T·KV-row norms.
  Buf dec_attn_in_TD_, dec_rstd_TH_, dec_q_raw_TQ_, dec_k_raw_TK_, dec_q_TQ_, dec_att_TQ_;
  Buf dec_mid_TD_, dec_mlp_in_TD_;
};

}  // namespace upcycle::model
