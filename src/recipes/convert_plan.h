// From a ConvertSpec and its opened sources to everything the converter needs before writing a byte:
// the output ModelConfig (family chosen or checked, MoE keys, the recipe recorded under
// "upcycle_recipe"), the MoE layers, expert widths, the weight-scaling factors, which source
// tensors are dropped because the target family cannot hold them (allowed only when all zero), and
// whether the recipe preserves the dense function at init (what --verify holds it to).
// All user errors (K > E, G not dividing F or E, a family that cannot express the request) are
// thrown here as Error naming the flag and, where useful, a family that can.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "recipes/convert_spec.h"
#include "recipes/source_models.h"
#include "recipes/weight_scaling.h"

namespace upcycle::recipes {

enum class Preservation {
  kExact,     // the MoE computes the dense function up to fp32 summation order (threshold 1e-4)
  kRounding,  // exact in real numbers, but scaled weights are rounded to a 16-bit dtype (threshold 1e-2)
  kNo,        // the recipe changes the function on purpose (noise, drop, new router, ...)
};

struct ConvertPlan {
  ModelConfig config;  // the output
  std::vector<int64_t> moe_layers;
  bool depth_tiling = false;
  int64_t expert_width = 0;  // F' = F/G
  int64_t shared_width = 0;  // S·F'
  bool virtual_groups = false;  // router rows shared within groups of G experts
  double scale = 1.0;
  MatrixScales scales;
  std::vector<int64_t> expert_source;  // resolved, one per expert
  std::vector<std::string> zero_only;  // source weights the target drops: must be all zero
  Preservation preservation = Preservation::kNo;
  std::string preservation_reason;
  std::vector<std::string> warnings;
  Json recipe;
};

ConvertPlan make_plan(const ConvertSpec& spec, const std::vector<SourceModel>& sources);
// make_plan's checks that need no weights (expert counts, output family), for a flag-driven
// conversion before its calibration or prompt forward passes: a conversion make_plan would refuse
// then fails in a second, not after minutes of running the dense model.
void precheck_plan(const ConvertSpec& spec, const ModelConfig& source);
// Whether --expert-init noise/drop changes any weight (r > 0, and σ > 0 for noise).
bool reinit_any(const ConvertSpec& spec);
// The source layer feeding output layer `layer` (depth tiling; identity otherwise).
int64_t source_layer(const ConvertPlan& plan, const ConvertSpec& spec, int64_t layer, int64_t source_layers);

}  // namespace upcycle::recipes
