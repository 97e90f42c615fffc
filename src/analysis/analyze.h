// `upcycle analyze` as a library call: routing and expert-specialisation diagnostics of one checkpoint
// on one or more dataset directories (one domain each), returned as the analysis JSON of
// docs/study.md (format "upcycle-analysis", version 1). `upcycle study` calls analyze_checkpoint for
// every checkpoint of its MoE runs; `upcycle report` reads the files. A dense checkpoint gets its
// domains' losses and an empty `layers` list. Expert similarities are neuron-matched (permutation-
// invariant, expert_similarity.h) with storage-order means alongside; expert↔dense similarity needs
// `dense` (never guessed).
// Errors are upcycle::Error naming the file at fault (checkpoint, dataset, shard, dense checkpoint);
// the data are checked before any weight is read. Non-goals: raw token files, shared-expert similarity.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/progress.h"

namespace upcycle::analysis {

inline constexpr const char* kAnalysisFormat = "upcycle-analysis";
inline constexpr int kAnalysisVersion = 1;

struct AnalyzeOptions {
  std::filesystem::path checkpoint;               // HF checkpoint dir (a training checkpoint gives step/flops)
  std::vector<std::filesystem::path> data;        // dataset directories, one domain each (≥ 1)
  std::optional<std::filesystem::path> dense;     // dense checkpoint for dense_similarity, or none (null)
  std::string split = "val";                      // "val" | "train"
  int64_t seq_len = 128;                          // tokens each window predicts
  int64_t max_tokens = 16384;                     // predicted tokens per domain at most; 0 = the whole split
  int64_t batch = 8;                              // windows per forward
  std::string backend = "cpu";                    // "cpu" | "cpu-bf16" | "ref"
};

// Predicted tokens analyze_checkpoint will evaluate over all domains (a Progress total); validates
// the options and opens the datasets (headers only), so bad input fails here already.
uint64_t analysis_token_count(const AnalyzeOptions& options);

// The analysis JSON of docs/study.md. `progress` (optional) advances by each batch's predicted tokens.
Json analyze_checkpoint(const AnalyzeOptions& options, Progress* progress);

}  // namespace upcycle::analysis
