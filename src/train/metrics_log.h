// RUN_DIR/metrics.jsonl: one JSON object per line (train steps and evaluations), appended and flushed
// as written, so `tail -f` and the report read a live run. On resume, records past the resumed step
// are dropped first (the file is rewritten atomically), so a resumed run's log equals an uninterrupted
// run's. Every record carries "kind" ("train" | "eval") and "step".
// Non-goals: schema enforcement (the trainer owns the fields; docs/training.md lists them).
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>

#include "core/json.h"

namespace upcycle::train {

class MetricsLog {
 public:
  // keep_through_step = −1: a fresh run (the file must be absent or empty). Otherwise (resume) records
  // with "step" ≤ keep_through_step are kept and later ones dropped. Errors name the file.
  MetricsLog(const std::filesystem::path& file, int64_t keep_through_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void write(const Json& record);  // one line, written through at once; Error naming the file on failure (full disk)
  void sync();                      // fsync, at checkpoints
  int64_t kept_records() const { return kept_records_; }  // records carried over from before a resume

 private:
  std::filesystem::path file_;
  std::FILE* out_ = nullptr;
  int64_t kept_records_ = 0;
};

}  // namespace upcycle::train
