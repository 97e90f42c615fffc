// mergekit-moe YAML (arcee-ai/mergekit `mergekit/moe/config.py`, systems.md §2) read unchanged, and
// turned into a neutral conversion plan: which local source directories, which source feeds each
// expert, noise/residual scales, top-k, the output family by mergekit's writer-selection rule, dtype,
// gate mode and the prompts per expert. Upcycle extensions: `average_non_ffn` (BTX: non-FFN weights
// are the mean over the distinct sources) and `seed` (random gates and noise).
// Invariants: every error names the YAML file and the key path (`experts[2].source_model`); model
// paths are local directories, resolved against the YAML file's directory when relative. Unknown keys
// are ignored as pydantic does (mergekit's models keep pydantic's default `extra="ignore"`), but each
// one is reported in `warnings` so a typo does not pass silently.
// Non-goals: HF hub downloads, LoRA (`model+lora`) and revisions (`model@rev`), the DeepSeek writer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/model_config.h"
#include "recipes/router_from_prompts.h"

namespace upcycle::recipes {

// mergekit's output writers, in the order mergekit tries them.
enum class MergekitArch { kMixtral, kDeepseek, kQwen, kQwen3 };

struct MergekitExpert {
  std::string source_model;          // as written in the YAML
  std::filesystem::path source_dir;  // resolved local directory
  std::vector<std::string> positive_prompts, negative_prompts;
  std::optional<double> noise_scale;     // σ of N(0, σ²) added to every expert tensor
  std::optional<double> residual_scale;  // multiplies down_proj only
};

struct MergekitMoeConfig {
  std::filesystem::path file;  // the YAML file, for error messages
  std::string base_model;
  std::filesystem::path base_dir;
  std::optional<std::string> architecture;  // as written; matched as a case-insensitive name prefix
  GateMode gate_mode = GateMode::kHidden;
  std::optional<DType> dtype;  // absent: the base model's dtype
  int64_t experts_per_token = 2;
  std::vector<MergekitExpert> experts;
  std::vector<MergekitExpert> shared_experts;  // 0 or 1
  // Upcycle extensions.
  bool average_non_ffn = false;
  uint64_t seed = 0;
  std::vector<std::string> warnings;  // one line each, e.g. an unknown key that was ignored
};

// Parses and validates the YAML (not the models: see plan_mergekit_moe). Throws Error(what, file).
MergekitMoeConfig parse_mergekit_moe_yaml(const std::filesystem::path& file);

// `upcycle convert --router-init hidden|hidden-avg|cheap-embed --prompts FILE.yaml`: the prompts of
// each routed expert, in mergekit's spelling (`experts: [{positive_prompts: [...], negative_prompts:
// [...]}, ...]`); other keys are ignored with a warning. Errors name the file and key path.
struct PromptTexts {
  std::vector<std::string> positive, negative;
};
std::vector<PromptTexts> read_expert_prompts_yaml(const std::filesystem::path& file, std::vector<std::string>& warnings);

// Where the non-FFN tensors (embeddings, attention, norms, lm_head) come from.
enum class NonFfnSource { kBaseModel, kAverageOfSources };

struct PlannedExpert {
  size_t source = 0;            // index into MoePlan::sources
  double noise_scale = 0.0;     // 0: no noise
  double residual_scale = 1.0;  // 1: down_proj unchanged
  std::vector<std::string> positive_prompts, negative_prompts;
};

struct MoePlan {
  std::vector<std::filesystem::path> sources;  // distinct source directories, base model first
  std::vector<PlannedExpert> experts;
  std::optional<PlannedExpert> shared_expert;
  // Qwen writer: the shared expert's sigmoid gate row comes from the router init (prompts, or the
  // random modes); otherwise it is zero, as mergekit leaves it.
  bool shared_expert_gate_from_init = false;
  int64_t top_k = 2;
  Family output_family = Family::kMixtral;  // kMixtral, kQwen2Moe or kQwen3Moe
  std::optional<DType> dtype;               // absent: the base model's dtype
  GateMode gate_mode = GateMode::kHidden;
  NonFfnSource non_ffn = NonFfnSource::kBaseModel;
  uint64_t seed = 0;
};

// The model_type of every source, in plan order (base, experts, shared), chooses the output family.
// Reads each source's config.json; throws Error naming the YAML and key for a source whose
// architecture or shapes differ from the base model's, or when no family upcycle writes fits.
MoePlan plan_mergekit_moe(const MergekitMoeConfig& config);
// The same with the sources' configs given (index-aligned with base, experts..., shared...).
MoePlan plan_mergekit_moe(const MergekitMoeConfig& config, const std::vector<ModelConfig>& source_configs);

}  // namespace upcycle::recipes
