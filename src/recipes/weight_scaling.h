// Weight scaling for function preservation (He et al. 2024, arXiv 2410.07524; Megatron
// upcycling_utils.py _get_moe_activation_scale). With virtual groups a token selects K/G whole
// groups; the MoE output is Σ_sel w_e·FFN_shard(e)(x), so it equals dense(x)/s before scaling with
//   s = G        for top-k-then-softmax (renormalised: each selected expert weighs 1/K),
//   s = E·G/K    for softmax-then-top-k without renormalisation (assumes p ≈ 1/E; exact when the router
//                is zero, since then p = 1/E exactly).
// Co-activation splits (carving.h): s = K renormalised, s = E otherwise — each selected expert enters with
// weight ≈ 1 like CMoE's; both equal the formulas above when every expert is selected (K = E = G).
// Modes: kCubeRoot multiplies gate, up and down by s^(1/3) (Megatron; exact only for homogeneous
// activations — silu is not, so SwiGLU gets silu(s^⅓ g)·s^⅓ u·s^⅓ ≠ s·silu(g)·u); kDown multiplies
// down_proj by s (exact: the output is linear in W_down).
#pragma once

#include <cstdint>

#include "recipes/convert_spec.h"

namespace upcycle::recipes {

struct MatrixScales {
  double gate = 1, up = 1, down = 1;
};

// The activation scale s the spec asks for (auto resolves by routing order; none = 1).
double resolve_scale(const ConvertSpec& spec);
MatrixScales matrix_scales(double s, ScalingMode mode);

}  // namespace upcycle::recipes
