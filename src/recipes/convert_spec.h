// What `upcycle convert` does, as data: the resolved recipe for turning one or more dense checkpoints
// into an MoE checkpoint (or a depth-tiled dense one). The CLI (cli/cmd_convert.cpp) and a mergekit
// YAML (recipes/mergekit_config.*) both map onto this struct; convert() in converter.h executes it.
// Invariants: sources[0] is the base model (non-FFN weights, shared expert, dense layers); every
// per-expert vector is empty (= the default for every expert) or has exactly `experts` entries;
// router_rows (RouterInit::kGiven) has one [E·D] row-major block per MoE layer, in layer order.
// The equations behind each field are in docs/recipes.md and at the top of each recipes/ file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/json.h"
#include "core/rng.h"

namespace upcycle::recipes {

enum class ExpertInit { kCopy, kNoise, kDrop, kRandom };
enum class DropScope { kNeuron, kMatrix };     // one index set per expert for gate/up/down, or per matrix
enum class DropStats { kMatrix, kSlice };      // N(μ,σ) of the whole dense matrix, or of the replaced slice
// fine-grained: Megatron shards, Qwen2 shuffle+cut, or balanced co-activation clusters (given neuron_groups)
enum class ExpertSplit { kContiguous, kShuffled, kCoactivation };
enum class RouterInit { kNormal, kUniform, kZeros, kGiven };
enum class RoutingOrder { kTopkSoftmax, kSoftmaxTopk };  // renormalised over the top-k, or not
enum class ScalingKind { kAuto, kNone, kFactor };
enum class ScalingMode { kCubeRoot, kDown };
// qwen2_moe's shared-expert gate: N(0, router σ²); exactly ungated at init (zero weight, down_proj ×2);
// zero weight without compensation (mergekit's default: the shared expert enters ×½); or given rows.
enum class SharedGate { kSigmoid, kUngated, kZero, kGiven };
enum class NonFfn { kBase, kAverage };
enum class DepthOrder { kTiled, kStacked };  // 0..L-1,0..L-1 or 0,0,1,1,…
enum class FromScratch { kNo, kYes };

// ExpertSplit::kCoactivation, one MoE layer: the shared expert's neurons (the most active ones) and each
// routed expert's, computed from calibration text (recipes/carving.h); together a partition of the FFN.
struct NeuronGroups {
  std::vector<int64_t> shared;
  std::vector<std::vector<int64_t>> experts;
};

struct ConvertSpec {
  std::vector<std::filesystem::path> sources;  // [0] = base
  std::string moe_layers = "all";              // layer_selection.h syntax
  int64_t experts = 8;
  int64_t top_k = 2;
  int64_t granularity = 1;     // G: experts are F/G wide
  int64_t shared_experts = 0;  // S: one fused shared expert S·F/G wide (qwen2_moe)
  SharedGate shared_gate = SharedGate::kSigmoid;
  int64_t shared_source = 0;
  double shared_residual_scale = 1.0;

  ExpertInit expert_init = ExpertInit::kCopy;
  double drop_ratio = 0.5;  // r: ⌊r·F'⌋ neurons re-drawn (drop) or perturbed (noise) per expert
  DropScope drop_scope = DropScope::kNeuron;
  DropStats drop_stats = DropStats::kMatrix;
  double noise_std = 0.02;
  ExpertSplit split = ExpertSplit::kContiguous;
  std::vector<NeuronGroups> neuron_groups;  // kCoactivation: per MoE layer, in layer order

  ScalingKind scaling = ScalingKind::kAuto;
  double scaling_factor = 1.0;  // kFactor only
  ScalingMode scaling_mode = ScalingMode::kDown;

  RouterInit router_init = RouterInit::kNormal;
  double router_std = 0.02;
  std::vector<std::vector<float>> router_rows;  // kGiven: per MoE layer, [E·D]
  std::vector<std::vector<float>> shared_gate_rows;  // SharedGate::kGiven: per MoE layer, [D]

  RoutingOrder routing = RoutingOrder::kTopkSoftmax;
  bool norm_topk = false;  // softmax-topk followed by renormalisation (= topk-softmax)
  std::optional<double> aux_loss_coef;  // nullopt: the output family's HF default

  std::string format = "auto";   // auto | mixtral | qwen2_moe | qwen3_moe
  std::optional<DType> dtype;    // nullopt: the base source's dtype
  uint64_t seed = 0;
  // The normal stream of the expert weights' draws (drop, noise, random experts, per-expert noise);
  // v1 reproduces conversions made before v2 existed. Routers, shared-expert gates and from-scratch
  // (`upcycle init`'s weights) draw v1 either way.
  RngVersion rng_version = RngVersion::kV2;

  // Several sources (BTX, mergekit-moe): per routed expert, its FFN's source index, extra Gaussian
  // noise on all its FFN weights (mergekit noise_scale) and a down_proj multiplier (residual_scale),
  // applied in mergekit's order: down_proj = (W + noise) · residual_scale.
  std::vector<int64_t> expert_source;
  std::vector<double> expert_noise_std;
  std::vector<double> expert_residual_scale;
  NonFfn non_ffn = NonFfn::kBase;

  int64_t depth_tile = 1;  // > 1: write a dense model with depth_tile·L layers instead of an MoE
  DepthOrder depth_order = DepthOrder::kTiled;
  FromScratch from_scratch = FromScratch::kNo;  // every weight re-drawn as `upcycle init` would

  std::string preset;  // recorded only
};

std::string_view expert_init_name(ExpertInit v);
std::string_view router_init_name(RouterInit v);
std::string_view routing_order_name(RoutingOrder v);
std::string_view expert_split_name(ExpertSplit v);
// The spec as JSON (recorded in config.json "upcycle_recipe" and the safetensors metadata); source
// paths as given, router_rows summarised by their count.
Json spec_to_json(const ConvertSpec& spec);

}  // namespace upcycle::recipes
