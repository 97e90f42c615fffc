// `upcycle study SPEC.yaml --out STUDY_DIR`: the side-by-side comparison of docs/study.md — a dense
// model (given, or pretrained here), every variant trained for the same extra compute, each MoE run
// analysed checkpoint by checkpoint, and the report. This file binds the flags; study/ parses the
// spec and plans, cli/study_runner.* executes. Exit: 0 done, 2 bad spec or a failed command,
// 128+signal when a training run was stopped (run the same command again to resume).

#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/runtime_flags.h"
#include "cli/study_runner.h"
#include "core/error.h"
#include "study/study_runs.h"
#include "study/study_spec.h"

namespace upcycle::cli {
namespace {

struct StudyOptions {
  std::string spec;
  std::string out;
  int64_t threads = 0;
  bool no_report = false;
  bool check = false;
};

constexpr const char* kEpilog =
    "A spec (more in experiments/ and docs/study.md):\n"
    "  name: core\n"
    "  data: [data/prose, data/code, data/dict]      # `upcycle data tokenize` outputs (val splits evaluated)\n"
    "  dense:                                        # the dense model: given (checkpoint: DIR) or pretrained\n"
    "    init: {arch: llama, preset: tiny, dtype: f32}\n"
    "    tokenizer: tok/tokenizer.json\n"
    "    pretrain_steps: 400\n"
    "  train: {micro-batch: 8, seq-len: 128, lr: 2e-3, warmup: 20}   # `upcycle train` flags of every run\n"
    "  extra_compute: 1.0                            # each variant's budget × the dense pretraining FLOPs\n"
    "  evals: 8                                      # evaluations (and analysed checkpoints) per run\n"
    "  seeds: [1, 2, 3]                              # optional: every variant once per seed (runs/<variant>/seed-<S>)\n"
    "  variants:\n"
    "    - name: dense-continuation                  # no convert: train the dense model further\n"
    "    - name: upcycle\n"
    "      convert: {preset: komatsuzaki2022, experts: 8}   # `upcycle convert` flags\n"
    "      train: {lr: [1e-3, 2e-3]}                 # a learning-rate sweep: one run per value, compared at the best\n"
    "    - name: moe-from-scratch\n"
    "      convert: {experts: 8, top-k: 2, from-scratch: true}\n"
    "\n"
    "STUDY_DIR gets study.json (the plan, the equivalent commands, each variant's status),\n"
    "dense-pretrain/ and runs/<variant>/ (ordinary `upcycle train` run directories), models/<variant>/,\n"
    "runs/<variant>/analysis/step-N.json (`upcycle analyze` of every checkpoint of MoE runs) and\n"
    "report.html; with seeds, runs/<variant>/seed-<S>/ and models/<variant>/seed-<S>/ per seed, the seed\n"
    "passed to train --seed (data order) and to convert --seed unless the variant's convert sets seed:.\n"
    "An `lr:` list (in `train:` or a variant's) sweeps the peak learning rate: runs/<variant>/lr-<lr>/ per\n"
    "value; the report compares each variant at its best lr (lowest mean val loss at equal compute) and\n"
    "shows the sweep. A from-scratch variant trains on `pretrain:`'s schedule (lr, warmup, …) unless it\n"
    "sets its own.\n"
    "Each variant trains for round(budget / (its train FLOPs per token × tokens per step))\n"
    "steps, so runs of different shapes compare at equal compute. Relative paths in the spec are taken\n"
    "from the spec file's directory. Interrupted (Ctrl-C, SIGTERM, a crash)? Run the same command again:\n"
    "finished runs are skipped, the interrupted one resumes bit for bit.";

// The spec's variants, a learning-rate sweep once with its values: "ok, 2 variants: dense up (lr 0.001, 0.002)".
void print_variants(const study::StudySpec& spec) {
  std::vector<std::string> names;
  for (const auto& v : spec.variants) {
    if (v.sweep.empty()) {
      names.push_back(v.name);
    } else if (names.empty() || !names.back().starts_with(v.sweep + " (lr ")) {
      names.push_back(v.sweep + " (lr " + v.lr + ")");
    } else {
      names.back().insert(names.back().size() - 1, ", " + v.lr);
    }
  }
  std::printf("%s: ok, %zu variants:", spec.file.c_str(), names.size());
  for (const auto& name : names) std::printf(" %s", name.c_str());
  std::printf("\n");
}

// What `seeds:` will do, for --check: how many runs, and which variants keep a convert seed of their own
// (their spread over seeds then measures the data order only).
void print_seeds(const study::StudySpec& spec) {
  if (spec.seeds.empty()) return;
  std::printf("seeds:");
  for (const int64_t s : spec.seeds) std::printf(" %lld", static_cast<long long>(s));
  std::printf(" (%zu runs)\n", spec.seeds.size() * spec.variants.size());
  std::string fixed;
  for (const auto& v : spec.variants)
    if (study::fixes_convert_seed(v)) fixed += (fixed.empty() ? "" : ", ") + v.name;
  if (!fixed.empty())
    std::printf("fixed convert seed (same conversion for every seed, only the data order varies): %s\n", fixed.c_str());
}

}  // namespace

int run_study(const Args& args) {
  StudyOptions o;
  OptionSet set("study", "upcycle study SPEC.yaml --out STUDY_DIR [--threads N] [--no-report]\n       upcycle study SPEC.yaml --check",
                "Compare upcycling recipes against dense continuation and MoE-from-scratch at equal extra\n"
                "compute on your data: pretrain (or take) a dense model, convert and train every variant of\n"
                "SPEC.yaml for the same FLOPs, analyse routing and expert specialisation along each MoE run,\n"
                "and write STUDY_DIR/report.html.");
  set.add_positional("SPEC", "the study specification (YAML)", &o.spec, Required::kYes);
  set.add("out", "STUDY_DIR", "the study directory (new, or an earlier run of this study to resume)", &o.out);
  bind_threads_flag(set, &o.threads, "used by convert and train; bitwise reproducibility needs the same count");
  set.add_flag("no-report", "skip report.html (run `upcycle report STUDY_DIR` later)", &o.no_report);
  set.add_flag("check", "only check SPEC (keys, paths, every command's flags) and print the variants; runs nothing",
               &o.check);
  set.add_epilog(kEpilog);
  if (!set.parse(args)) return 0;
  if (o.check) {
    const study::StudySpec spec = study::parse_study_spec(o.spec);
    check_study(spec);
    print_variants(spec);
    print_seeds(spec);
    return 0;
  }
  if (o.out.empty()) throw Error("missing --out STUDY_DIR");
  apply_threads(o.threads);
  const study::StudySpec spec = study::parse_study_spec(o.spec);
  return run_study_spec(spec, {.out = o.out, .threads = o.threads, .report = !o.no_report});
}

}  // namespace upcycle::cli
