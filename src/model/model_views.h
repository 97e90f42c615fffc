// Typed per-layer views into a TensorStore: which pointer is q_proj of layer 3, found once by the
// weight's role instead of by string at every use. The same code builds const views of parameters
// and mutable views of gradients, so both always agree on what each pointer means.
// Invariants: pointers stay valid while the store lives (its buffer never reallocates); a weight the
// config does not have (biases, q/k norms, dense FFN in MoE layers) is nullptr; with tied
// embeddings lm_head_VD aliases embed_VD, so lm_head gradients land in the embedding gradient.
// Shape legend: V vocab, D model, Q = H·S query width, K = KV·S key/value width, S head dim,
// F ffn width, E experts.
#pragma once

#include <vector>

#include "model/moe_layer.h"
#include "model/parameters.h"

namespace upcycle::model {

template <typename P>  // const float* for parameters, float* for gradients
struct LayerViews {
  P attn_norm_D = nullptr;
  P q_proj_QD = nullptr, k_proj_KD = nullptr, v_proj_KD = nullptr, o_proj_DQ = nullptr;
  P q_bias_Q = nullptr, k_bias_K = nullptr, v_bias_K = nullptr, o_bias_D = nullptr;
  P q_norm_S = nullptr, k_norm_S = nullptr;
  P mlp_norm_D = nullptr;
  P gate_FD = nullptr, up_FD = nullptr, down_DF = nullptr;  // dense FFN only
};

template <typename P>
struct ModelViews {
  P embed_VD = nullptr;
  P final_norm_D = nullptr;
  P lm_head_VD = nullptr;  // = embed_VD when tied
  std::vector<LayerViews<P>> layers;
};

ModelViews<const float*> model_views(const TensorStore& store, const ModelConfig& config);
ModelViews<float*> model_views(TensorStore& store, const ModelConfig& config);

// Views of MoE layer `layer`'s router, experts (in expert order) and qwen2_moe shared expert, in the
// form MoeLayer takes; the layer must be an MoE layer of `config` (UPCYCLE_CHECK).
MoeWeights moe_weight_views(const TensorStore& store, const ModelConfig& config, int64_t layer);
MoeGrads moe_grad_views(TensorStore& store, const ModelConfig& config, int64_t layer);

}  // namespace upcycle::model
