// The streaming converter: executes a ConvertSpec into an atomic output directory. Every output
// tensor is declared first (CheckpointWriter plan), then produced layer by layer: unchanged tensors
// are copied kernel-side (copy_file_range when dtypes match), experts are built one matrix at a time
// from the dense matrix of their source as stored: gathered (and scaled) when nothing is drawn (splits,
// scaling; neuron_gather.h) and written behind (write_behind.h); drawn (drop, noise, random) a block of
// rows at a time on every thread, each block pwritten as it is done (drawn_expert.h, io/parallel_write.h).
// The next dense matrix is read ahead (dense_prefetch.h), so memory holds two dense matrices as stored,
// plus two gathered expert matrices or a few 512 KB blocks (plus 4M-element chunks for averaging): peak
// memory does not grow with depth (docs/performance.md gives the bound at 1B and 7B, measured).
// Side files (tokenizer*, special_tokens_map.json, generation_config.json, chat templates, …) are
// copied byte for byte from the base source. The recipe goes into config.json ("upcycle_recipe")
// and every shard's __metadata__ ("upcycle_recipe", a JSON string). MoE outputs come in either expert
// layout; experts of the fused one are written as slices of the stacked tensors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/output_dir.h"
#include "io/weight_table.h"
#include "recipes/convert_plan.h"
#include "recipes/convert_spec.h"

namespace upcycle::recipes {

enum class ShowProgress { kNo, kYes };

struct ConvertOutput {
  std::filesystem::path dir;
  Overwrite overwrite = Overwrite::kRefuse;
  uint64_t max_shard_bytes = 5'000'000'000ull;
  ShowProgress progress = ShowProgress::kYes;
  // MoE outputs: per-expert (legacy names every tool loads) or fused (transformers-5 stacked experts).
  ExpertLayout layout = ExpertLayout::kPerExpert;
};

struct ConvertResult {
  ConvertPlan plan;
  std::vector<std::string> files;  // relative to the output dir
  uint64_t tensor_bytes = 0;
};

ConvertResult convert(const ConvertSpec& spec, const ConvertOutput& output);

}  // namespace upcycle::recipes
