// A study specification (SPEC.yaml of `upcycle study`, docs/study.md): which dense model (given, or
// pretrained by the study), which data, how much extra compute, and the variants to compare. Each
// variant is "convert the dense model with these `upcycle convert` flags (or not: dense
// continuation), then train it with these `upcycle train` flags" for the same extra FLOPs.
// Invariants after parse_study_spec: names are unique and file-system safe (a learning-rate sweep's
// runs: "<name>/lr-<lr>", a relative path), paths are absolute
// (relative ones are taken from the spec file's directory), no flag map names a flag the study sets
// itself (--model, --data, --out, --steps, …), a variant's `from` step is a kept pretraining step,
// `seeds` are distinct positive integers and, when given, no `train:` map sets --seed; a learning-rate
// sweep (`lr:` written as a list) is expanded into one variant per value (below), so no variant's
// effective `lr` is a list and the dense pretraining's is a single value.
// Non-goals: flag validation (each command checks its own flags when the variant is planned).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace upcycle::study {

// Command-line flags as the spec writes them (`{lr: 1e-3, from-scratch: true, val: [a, b]}`), in
// order: each becomes `--name value…`; a flag set to true becomes `--name` alone, false is omitted.
struct Flag {
  std::string name;                 // kebab-case, without the dashes
  std::vector<std::string> values;  // empty: a boolean flag
  bool list = false;                // written as a YAML list (`lr: [1e-3, 2e-3]` is a sweep, `lr: 1e-3` is not)
};
using Flags = std::vector<Flag>;
std::vector<std::string> flags_to_args(const Flags& flags);
// `base` with every flag that `override` also sets replaced by its value there, then the rest of
// `override` appended: how a variant's `train:` refines the study's.
Flags merge_flags(const Flags& base, const Flags& override);
// Whether `flags` sets `name` (to any value).
bool has_flag(const Flags& flags, std::string_view name);

struct DenseSpec {
  // Either an existing dense checkpoint…
  std::filesystem::path checkpoint;
  std::optional<double> sunk_flops;  // its pretraining FLOPs when it has no trainer_state.json
  // …or one the study pretrains: `upcycle init <init flags>` trained for pretrain_steps.
  Flags init;
  std::filesystem::path tokenizer;    // optional tokenizer.json copied into the initialised model
  int64_t pretrain_steps = 0;
  std::vector<int64_t> keep_steps;    // earlier pretraining checkpoints kept as variant starts (`from`)
  bool pretrains() const { return pretrain_steps > 0; }
};

struct VariantSpec {
  std::string name;
  std::string description;
  std::optional<Flags> convert;  // nullopt: train the dense checkpoint itself (dense continuation)
  Flags train;                   // on top of the study's `train` flags
  std::optional<int64_t> from;   // start from this pretraining step (default: the final dense checkpoint)
  std::optional<double> extra_compute;  // this variant's budget (default: the study's)
  // One run of a learning-rate sweep (docs/study.md, "Learning-rate sweeps"): the spec's variant whose
  // effective `lr:` is a list becomes one variant per value, named "<sweep>/lr-<lr>" (so its runs live
  // in runs/<sweep>/lr-<lr>[/seed-<S>]), with `train.lr` set to that value. Empty for other variants.
  std::string sweep;  // the spec's variant name
  std::string lr;     // the value's canonical text ("0.002"), also passed as --lr
};

struct StudySpec {
  std::filesystem::path file;  // the spec, absolute
  std::string name;
  std::vector<std::string> data;  // `--data` sources of every run: DIR or DIR:WEIGHT, DIR absolute
  std::vector<std::filesystem::path> val;  // evaluated (val split) by every run and by analyze
  DenseSpec dense;
  Flags train;     // shared by every run
  Flags pretrain;  // the dense pretraining only, on top of `train`
  double extra_compute = 1.0;  // budget per variant, × the dense model's pretraining FLOPs
  int64_t evals = 8;           // evaluations (= checkpoints, each analysed) per variant run
  int64_t analysis_tokens = 8192;  // predicted tokens per val domain in each analysis
  // Training seeds: each variant is converted and trained once per seed (study/study_runs.h). Empty:
  // one run per variant without --seed flags, as before `seeds:` existed.
  std::vector<int64_t> seeds;
  std::vector<VariantSpec> variants;
};

// `upcycle train` flags that shape the learning-rate schedule: what a from-scratch variant takes from
// the spec's `pretrain:` by default.
bool is_schedule_flag(std::string_view name);
// The variant's `convert:` has `from-scratch: true`.
bool trains_from_scratch(const VariantSpec& variant);
// A variant's `upcycle train` flags without the seed: the study's `train:`, then for a variant trained
// from scratch the schedule flags of `pretrain:` (a fresh model trains like the dense one did), then
// the variant's own `train:`.
Flags variant_train_flags(const StudySpec& spec, const VariantSpec& variant);
// "0.002", "1e-05": printf %g, or every digit when %g would not read back as the same number.
std::string lr_text(double lr);
// "lr-0.002": a sweep run's directory under runs/<sweep>/ (and models/<sweep>/).
std::string lr_dir_name(const std::string& lr_text);

// Reads and checks SPEC.yaml; Error naming the file and the key for anything malformed.
StudySpec parse_study_spec(const std::filesystem::path& file);

}  // namespace upcycle::study
