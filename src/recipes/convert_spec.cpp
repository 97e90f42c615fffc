// Names and the JSON record of a ConvertSpec (see convert_spec.h).
#include "recipes/convert_spec.h"

namespace upcycle::recipes {

std::string_view expert_init_name(ExpertInit v) {
  switch (v) {
    case ExpertInit::kCopy: return "copy";
    case ExpertInit::kNoise: return "noise";
    case ExpertInit::kDrop: return "drop";
    case ExpertInit::kRandom: return "random";
  }
  return "?";
}

std::string_view router_init_name(RouterInit v) {
  switch (v) {
    case RouterInit::kNormal: return "normal";
    case RouterInit::kUniform: return "uniform";
    case RouterInit::kZeros: return "zeros";
    case RouterInit::kGiven: return "given";
  }
  return "?";
}

std::string_view routing_order_name(RoutingOrder v) {
  return v == RoutingOrder::kTopkSoftmax ? "topk-softmax" : "softmax-topk";
}

std::string_view expert_split_name(ExpertSplit v) {
  switch (v) {
    case ExpertSplit::kContiguous: return "contiguous";
    case ExpertSplit::kShuffled: return "shuffled";
    case ExpertSplit::kCoactivation: return "coactivation";
  }
  return "?";
}

Json spec_to_json(const ConvertSpec& s) {
  Json j = Json::object();
  j["tool"] = "upcycle convert";
  if (!s.preset.empty()) j["preset"] = s.preset;
  Json sources = Json::array();
  for (const auto& p : s.sources) sources.push_back(p.string());
  j["sources"] = sources;
  if (s.depth_tile > 1) {
    j["depth_tile"] = s.depth_tile;
    j["depth_order"] = s.depth_order == DepthOrder::kTiled ? "tiled" : "stacked";
    j["seed"] = s.seed;
    return j;
  }
  j["moe_layers"] = s.moe_layers;
  j["experts"] = s.experts;
  j["top_k"] = s.top_k;
  j["granularity"] = s.granularity;
  j["expert_split"] = expert_split_name(s.split);
  j["shared_experts"] = s.shared_experts;
  if (s.shared_experts > 0) {
    j["shared_expert_gate"] = s.shared_gate == SharedGate::kSigmoid   ? "sigmoid"
                              : s.shared_gate == SharedGate::kUngated ? "ungated"
                              : s.shared_gate == SharedGate::kZero    ? "zero"
                                                                      : "given";
    j["shared_source"] = s.shared_source;
    j["shared_residual_scale"] = s.shared_residual_scale;
  }
  j["expert_init"] = expert_init_name(s.expert_init);
  if (s.expert_init == ExpertInit::kDrop || s.expert_init == ExpertInit::kNoise) {
    j["ratio"] = s.drop_ratio;
    j["scope"] = s.drop_scope == DropScope::kNeuron ? "neuron" : "matrix";
    if (s.expert_init == ExpertInit::kDrop) j["stats"] = s.drop_stats == DropStats::kMatrix ? "matrix" : "slice";
    if (s.expert_init == ExpertInit::kNoise) j["noise_std"] = s.noise_std;
  }
  j["weight_scaling"] = s.scaling == ScalingKind::kAuto ? Json("auto")
                        : s.scaling == ScalingKind::kNone ? Json("none")
                                                          : Json(s.scaling_factor);
  j["weight_scaling_mode"] = s.scaling_mode == ScalingMode::kDown ? "down" : "cube-root";
  j["router_init"] = router_init_name(s.router_init);
  if (s.router_init == RouterInit::kNormal || s.router_init == RouterInit::kUniform) j["router_std"] = s.router_std;
  j["router"] = routing_order_name(s.routing);
  j["norm_topk"] = s.norm_topk;
  if (!s.expert_source.empty()) j["expert_source"] = s.expert_source;
  if (!s.expert_noise_std.empty()) j["expert_noise_std"] = s.expert_noise_std;
  if (!s.expert_residual_scale.empty()) j["expert_residual_scale"] = s.expert_residual_scale;
  j["non_ffn"] = s.non_ffn == NonFfn::kBase ? "base" : "average";
  if (s.from_scratch == FromScratch::kYes) j["from_scratch"] = true;
  j["seed"] = s.seed;
  j["rng_version"] = int(s.rng_version);
  return j;
}

}  // namespace upcycle::recipes
