// A training run directory (the only link between training and reporting):
//   RUN_DIR/config.json      the run record: {"format": "upcycle-train-run", "version": 1, "options": every
//                            flag's value, "model": {"path", "config"}, "routing", "flops_per_token",
//                            "tokens_per_step", "data", "val"}; written atomically at every start
//   RUN_DIR/metrics.jsonl    train/eval records (train/metrics_log.h)
//   RUN_DIR/tensorboard/     event files (train/tensorboard_writer.h)
//   RUN_DIR/checkpoints/step-00000020/  training checkpoints (train/train_checkpoint.h)
// Invariant: a fresh run never writes into a non-empty directory unless told to start over (--force),
// and --force only deletes a directory that holds a run record.
// Non-goals: locking against two trainers in one directory.
#pragma once

#include <filesystem>

#include "core/json.h"

namespace upcycle::train {

inline constexpr const char* kRunFormat = "upcycle-train-run";

struct RunPaths {
  std::filesystem::path root;
  std::filesystem::path config() const { return root / "config.json"; }
  std::filesystem::path metrics() const { return root / "metrics.jsonl"; }
  std::filesystem::path tensorboard() const { return root / "tensorboard"; }
  std::filesystem::path checkpoints() const { return root / "checkpoints"; }
};

enum class StartOver { kNo, kYes };

// A fresh run: creates RUN_DIR (and its checkpoints/) if needed. A non-empty RUN_DIR is an Error
// suggesting --resume or --force; with StartOver::kYes a run directory's contents are removed first
// (anything without a run record is refused: --force must not delete arbitrary directories).
// A directory left by a fresh start killed before its run record (an empty checkpoints/, the record's
// temporary file) counts as empty.
void prepare_fresh_run_dir(const RunPaths& run, StartOver start_over);

// RUN_DIR/config.json of an existing run; Error naming it when absent or not a run record.
Json read_run_record(const std::filesystem::path& run_dir);

// Writes `json` (pretty-printed) to `file` through a temporary sibling: fsync, rename, fsync the dir.
void write_json_atomically(const std::filesystem::path& file, const Json& json);

}  // namespace upcycle::train
