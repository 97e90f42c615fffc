// Role-based view resolution over a TensorStore (see model_views.h).
#include "model/model_views.h"

#include "core/error.h"

namespace upcycle::model {
namespace {

template <typename P>
void assign_layer_view(LayerViews<P>& v, WeightRole role, P p) {
  switch (role) {
    case WeightRole::kAttnNorm: v.attn_norm_D = p; break;
    case WeightRole::kQProj: v.q_proj_QD = p; break;
    case WeightRole::kKProj: v.k_proj_KD = p; break;
    case WeightRole::kVProj: v.v_proj_KD = p; break;
    case WeightRole::kOProj: v.o_proj_DQ = p; break;
    case WeightRole::kQBias: v.q_bias_Q = p; break;
    case WeightRole::kKBias: v.k_bias_K = p; break;
    case WeightRole::kVBias: v.v_bias_K = p; break;
    case WeightRole::kOBias: v.o_bias_D = p; break;
    case WeightRole::kQNorm: v.q_norm_S = p; break;
    case WeightRole::kKNorm: v.k_norm_S = p; break;
    case WeightRole::kMlpNorm: v.mlp_norm_D = p; break;
    case WeightRole::kGateProj: v.gate_FD = p; break;
    case WeightRole::kUpProj: v.up_FD = p; break;
    case WeightRole::kDownProj: v.down_DF = p; break;
    default: break;  // MoE weights: moe_weight_views
  }
}

// Store is TensorStore or const TensorStore; P the matching pointer type.
template <typename P, typename Store>
ModelViews<P> build_views(Store& store, const ModelConfig& config) {
  ModelViews<P> v;
  v.layers.resize(size_t(config.num_hidden_layers));
  for (size_t i = 0; i < store.specs().size(); ++i) {
    const WeightSpec& spec = store.specs()[i];
    P p = store.view(i).data();
    switch (spec.role) {
      case WeightRole::kEmbed: v.embed_VD = p; break;
      case WeightRole::kFinalNorm: v.final_norm_D = p; break;
      case WeightRole::kLmHead: v.lm_head_VD = p; break;
      default:
        UPCYCLE_CHECK(spec.layer >= 0 && spec.layer < config.num_hidden_layers, "layer weight without a layer: " + spec.name);
        assign_layer_view(v.layers[size_t(spec.layer)], spec.role, p);
    }
  }
  if (config.tie_word_embeddings) {
    UPCYCLE_CHECK(v.lm_head_VD == nullptr, "tied model with an lm_head weight");
    v.lm_head_VD = v.embed_VD;
  }
  UPCYCLE_CHECK(v.embed_VD && v.final_norm_D && v.lm_head_VD, "store lacks embedding, final norm or lm_head");
  return v;
}

// dots1's e_score_correction_bias is the routing's selection bias; it has no gradient.
void set_selection_bias(MoeWeights& w, const float* bias_E) { w.selection_bias_E = bias_E; }
void set_selection_bias(MoeGrads&, float*) {}

template <typename Views, typename Store>
Views build_moe_views(Store& store, const ModelConfig& config, int64_t layer) {
  UPCYCLE_CHECK(layer >= 0 && layer < config.num_hidden_layers && config.is_moe_layer(layer), "not an MoE layer");
  Views v;
  const size_t E = size_t(config.num_experts);
  v.gate_FD.assign(E, nullptr);
  v.up_FD.assign(E, nullptr);
  v.down_DF.assign(E, nullptr);
  for (size_t i = 0; i < store.specs().size(); ++i) {
    const WeightSpec& spec = store.specs()[i];
    if (spec.layer != layer) continue;
    auto p = store.view(i).data();
    switch (spec.role) {
      case WeightRole::kRouter: v.router_ED = p; break;
      case WeightRole::kRouterBias: set_selection_bias(v, p); break;
      case WeightRole::kExpertGate: v.gate_FD.at(size_t(spec.expert)) = p; break;
      case WeightRole::kExpertUp: v.up_FD.at(size_t(spec.expert)) = p; break;
      case WeightRole::kExpertDown: v.down_DF.at(size_t(spec.expert)) = p; break;
      case WeightRole::kSharedGate: v.shared_gate_FsD = p; break;
      case WeightRole::kSharedUp: v.shared_up_FsD = p; break;
      case WeightRole::kSharedDown: v.shared_down_DFs = p; break;
      case WeightRole::kSharedExpertGate: v.shared_expert_gate_1D = p; break;
      default: break;
    }
  }
  UPCYCLE_CHECK(v.router_ED != nullptr, "MoE layer without a router");
  for (size_t e = 0; e < E; ++e)
    UPCYCLE_CHECK(v.gate_FD[e] && v.up_FD[e] && v.down_DF[e], "MoE layer with a missing expert weight");
  return v;
}

}  // namespace

ModelViews<const float*> model_views(const TensorStore& store, const ModelConfig& config) {
  return build_views<const float*>(store, config);
}

ModelViews<float*> model_views(TensorStore& store, const ModelConfig& config) {
  return build_views<float*>(store, config);
}

MoeWeights moe_weight_views(const TensorStore& store, const ModelConfig& config, int64_t layer) {
  return build_moe_views<MoeWeights>(store, config, layer);
}

MoeGrads moe_grad_views(TensorStore& store, const ModelConfig& config, int64_t layer) {
  return build_moe_views<MoeGrads>(store, config, layer);
}

}  // namespace upcycle::model
