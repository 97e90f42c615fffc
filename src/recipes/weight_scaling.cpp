// Weight scaling factors (see weight_scaling.h).
#include "recipes/weight_scaling.h"

#include <cmath>

namespace upcycle::recipes {

double resolve_scale(const ConvertSpec& spec) {
  switch (spec.scaling) {
    case ScalingKind::kNone: return 1.0;
    case ScalingKind::kFactor: return spec.scaling_factor;
    case ScalingKind::kAuto: break;
  }
  const bool renormalised = spec.routing == RoutingOrder::kTopkSoftmax || spec.norm_topk;
  const double E = double(spec.experts), G = double(spec.granularity), K = double(spec.top_k);
  // Co-activation clusters: K (renormalised) or E (p ≈ 1/E) makes each selected expert weigh ≈ 1, as in
  // CMoE; with every expert selected (K = E = G) these are the formulas below.
  if (spec.split == ExpertSplit::kCoactivation) return renormalised ? K : E;
  return renormalised ? G : E * G / K;
}

MatrixScales matrix_scales(double s, ScalingMode mode) {
  if (mode == ScalingMode::kDown) return {1.0, 1.0, s};
  const double c = std::cbrt(s);
  return {c, c, c};
}

}  // namespace upcycle::recipes
