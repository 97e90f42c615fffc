// What an MoE layer is configured with: routing mode and options, the training/inference phase, and
// the layer's widths. Its own header so the routing (moe_routing.h) and the Dirichlet prior do not
// depend on the layer (moe_layer.h), whose header documents the semantics of every option.
#pragma once

#include <cstdint>
#include <vector>

#include "io/model_config.h"

namespace upcycle::model {

enum class RoutingMode { kTokenChoice, kExpertChoice };
enum class Phase { kTraining, kInference };  // jitter applies only in training

struct MoeOptions {
  int64_t num_experts = 0;
  int64_t top_k = 0;
  TopkNorm topk_norm = TopkNorm::kRenormalize;
  double topk_scaling = 1.0;  // dots1: routed_scaling_factor
  RouterScoring scoring = RouterScoring::kSoftmax;
  int64_t n_group = 1;     // token choice only: experts in n_group equal groups ...
  int64_t topk_group = 1;  // ... of which the topk_group best are eligible (1, 1 = no limit)
  RoutingMode mode = RoutingMode::kTokenChoice;
  double capacity_factor = 0.0;  // 0 = dropless (token choice); expert choice needs > 0
  // Router input × U(1−jitter, 1+jitter) per element during training, Switch-style: the experts see the
  // clean x (HF Mixtral multiplies the experts' input too). Noise element i = t·D+d is counter i of
  // CounterRng(seed, "moe_jitter"), so callers pass a distinct seed per layer and step.
  double jitter = 0.0;
  double aux_loss_coef = 0.0;
  double z_loss_coef = 0.0;
  // Dirichlet-prior shaping: α per expert (empty = off) and the loss's coefficient.
  std::vector<double> dirichlet_alpha_E;
  // Per-domain priors instead: row d is the α per expert of the tokens of domain d (empty = none; set
  // at most one of the two).
  std::vector<std::vector<double>> dirichlet_domain_alpha_DE;
  double dirichlet_coef = 0.0;
  bool has_dirichlet_prior() const { return !dirichlet_alpha_E.empty() || !dirichlet_domain_alpha_DE.empty(); }
};

struct MoeDims {
  int64_t hidden = 0;         // D
  int64_t expert_width = 0;   // F
  int64_t shared_width = 0;   // Fs, 0 = no shared expert
};

}  // namespace upcycle::model
