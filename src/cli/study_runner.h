// Executes a study (study/study_spec.h) into STUDY_DIR by running the ordinary commands in-process:
// `init` + `train` for the dense pretraining (when the spec asks for it), then per variant `convert`
// (unless it continues the dense model) and `train` for its share of the equal-compute budget, then
// `analyze` on each checkpoint of MoE runs and `report` over the whole directory (docs/study.md).
// With `seeds:` every variant is converted and trained once per seed (study/study_runs.h: runs/<v>/seed-<S>),
// the dense model shared by all. Resumable: finished steps are detected from what is on disk (complete model directories, run
// directories at their final step, existing analysis files) and skipped; an interrupted run resumes
// with `train --resume`. study.json records the plan, the equivalent command lines and each status.
// Invariant: a variant's recorded commands never change under it; a spec edit that would change a
// started variant is an error naming it (start a new STUDY_DIR, or delete that variant's run).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "study/study_spec.h"

namespace upcycle::cli {

struct StudyRunOptions {
  std::filesystem::path out;
  int64_t threads = 0;     // passed to convert and train (0: all cores)
  bool report = true;      // write STUDY_DIR/report.html at the end
};

// Parses every variant's `convert` and `train` flags (and the pretraining's) with the commands' own
// option tables, without touching any file: Error naming the spec key for the first bad flag.
void check_study(const study::StudySpec& spec);

// Returns the process exit code: 0 when every variant is done, 128+signal when a training run was
// stopped by SIGINT/SIGTERM (its checkpoint is written; running the study again resumes it).
int run_study_spec(const study::StudySpec& spec, const StudyRunOptions& options);

}  // namespace upcycle::cli
