// The convert presets (see presets.h and docs/recipes.md).
#include "recipes/presets.h"

#include "core/error.h"

namespace upcycle::recipes {

const std::vector<ConvertPreset>& convert_presets() {
  static const std::vector<ConvertPreset> kPresets{
      {"komatsuzaki2022", "Komatsuzaki et al. 2022, arXiv 2212.05055; flaxformer moe.gin, T5X sparse_upcycle.gin",
       "every other layer from the second, 32 copied experts, top-2 without renormalisation, router N(0, 0.02^2), aux 0.01",
       {{"moe-layers", "every:2:1"}, {"experts", "32"}, {"top-k", "2"}, {"expert-init", "copy"},
        {"router-init", "normal:0.02"}, {"router", "softmax-topk"}, {"weight-scaling", "none"},
        {"aux-loss-coef", "0.01"}}},
      {"drop-upcycling", "Nakamura et al. 2025, arXiv 2502.19261; Taishi-N324/Drop-Upcycling conversions/drop_upcycling.py",
       "8 experts top-2 (Mixtral routing), per-expert shuffle, r = 0.5 re-drawn per matrix from the slice's N(mean, std), "
       "router uniform with std 0.02, aux 0.02",
       {{"experts", "8"}, {"top-k", "2"}, {"moe-layers", "all"}, {"expert-init", "drop"}, {"drop-ratio", "0.5"},
        {"drop-scope", "matrix"}, {"drop-stats", "slice"}, {"expert-split", "shuffled"}, {"router-init", "uniform:0.02"},
        {"router", "topk-softmax"}, {"aux-loss-coef", "0.02"}}},
      {"nvidia-granular", "He et al. 2024, arXiv 2410.07524; Megatron-LM upcycling_utils.py",
       "E64G8T8: 64 experts of F/8, top-8, softmax-then-top-k, virtual-group router, weight scaling s = E*G/K as s^(1/3) "
       "on gate, up and down, aux 0.01",
       {{"experts", "64"}, {"granularity", "8"}, {"top-k", "8"}, {"expert-split", "contiguous"}, {"expert-init", "copy"},
        {"router", "softmax-topk"}, {"router-init", "normal:0.02"}, {"weight-scaling", "auto"},
        {"weight-scaling-mode", "cube-root"}, {"aux-loss-coef", "0.01"}}},
      {"qwen-fine-grained", "Qwen2 technical report §2.2.3, arXiv 2407.10671; Qwen1.5-MoE-A2.7B blog and config",
       "60 routed experts of F/8 cut from shuffled copies, 50% re-initialised, 4 shared experts (one fused, sigmoid gate), "
       "top-4 without renormalisation, qwen2_moe",
       {{"experts", "60"}, {"granularity", "8"}, {"top-k", "4"}, {"shared-experts", "4"}, {"expert-split", "shuffled"},
        {"expert-init", "drop"}, {"drop-ratio", "0.5"}, {"router", "softmax-topk"}, {"weight-scaling", "none"},
        {"format", "qwen2_moe"}, {"aux-loss-coef", "0.001"}}},
      {"cmoe", "Pei et al. 2025, arXiv 2502.04416 (CMoE); JarvisPei/CMoE",
       "training-free carving (needs --calibration): 8 experts of F/8, the 2 of most active neurons one ungated shared "
       "expert, 6 routed co-activation clusters, top-2, router from representative neurons, qwen2_moe",
       {{"granularity", "8"}, {"experts", "6"}, {"shared-experts", "2"}, {"top-k", "2"}, {"expert-split", "coactivation"},
        {"router-init", "cmoe"}, {"shared-expert-gate", "ungated"}, {"router", "topk-softmax"}, {"weight-scaling", "auto"},
        {"format", "qwen2_moe"}}},
      {"btx", "Sukhbaatar et al. 2024, arXiv 2403.07816; Drop-Upcycling conversions/branch_train_mix.py",
       "experts from several dense fine-tunes (--expert-sources, expert e from source floor(e*S/E)), non-FFN weights "
       "averaged, top-2 renormalised, router uniform with std 0.02",
       {{"experts", "8"}, {"top-k", "2"}, {"expert-init", "copy"}, {"average-non-ffn", ""}, {"router-init", "uniform:0.02"},
        {"router", "topk-softmax"}, {"aux-loss-coef", "0.01"}}},
  };
  return kPresets;
}

std::string convert_preset_names() {
  std::string out;
  for (const auto& p : convert_presets()) out += (out.empty() ? "" : ", ") + std::string(p.name);
  return out;
}

const ConvertPreset& find_convert_preset(std::string_view name) {
  for (const auto& p : convert_presets())
    if (p.name == name) return p;
  throw Error("unknown preset '" + std::string(name) + "' (choose one of: " + convert_preset_names() + ")");
}

}  // namespace upcycle::recipes
