// The data `upcycle report` draws, loaded from run directories only (JSON files; docs/study.md):
// a study directory (study.json + runs/<variant>/) or plain `upcycle train` run directories. A study
// variant whose run has no metrics.jsonl yet is kept as pending with no points; a variant trained once
// per seed holds its seed runs and their mean curves. Malformed files are user errors naming the
// file; a truncated last metrics line (a run being written) is ignored.
// Non-goals: reading checkpoints or TensorBoard files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace upcycle::report {

// The x axis of every compute plot.
enum class XAxis { kExtraComputePercent, kFlops };

// docs/study.md: x = 100 · (sunk + f − dense_sunk) / dense_sunk.
double extra_compute_percent(double variant_sunk_flops, double run_flops, double dense_sunk_flops);

struct LossPoint {
  int64_t step = 0;
  double flops = 0;
  double x = 0;  // on the report's x axis
  double loss = 0;
  double tokens = 0;  // the run's training tokens so far (the per-token view)
};

struct LayerLoad {
  int64_t layer = 0;
  std::vector<double> load;  // E fractions
};

struct AnalysisPoint {
  int64_t step = 0;
  double x = 0;
  std::optional<double> expert_similarity_mean, dense_similarity_mean, domain_specialization;
};

// domain × expert load of one MoE layer, from the newest analysis JSON.
struct DomainRouting {
  int64_t layer = 0, step = 0;
  std::vector<std::string> domains;
  std::vector<std::vector<double>> load;
};

struct Variant {
  std::string name, kind = "dense", description, status = "pending";
  std::optional<int64_t> seed;  // a seed run of a variant trained once per seed (name "<variant> · seed <S>")
  // One learning rate of a sweep (study.json "sweep", "lr"): the spec's variant name and the peak lr.
  // After load_report_data the sweep's chosen run stands in `variants` under the spec's name (lr_sweep.h).
  std::string sweep;
  std::optional<double> lr;
  // A study variant with `seeds:`: one run per seed (each with `seed`), folded by aggregate_seed_runs
  // (seed_runs.h) into the fields below: mean curves over the seeds, the least advanced seed's progress,
  // and the first started seed's loads and routing (expert numbers mean nothing across seeds).
  std::vector<Variant> seed_runs;
  std::filesystem::path run_dir;
  bool started = false;  // metrics.jsonl exists
  double sunk_flops = 0, budget_flops = 0, tokens_per_step = 0, train_flops_per_token = 0;
  int64_t planned_steps = 0;
  std::vector<std::string> commands;
  // What the run has done so far.
  int64_t steps_done = 0;
  double tokens_done = 0, flops_done = 0;
  std::map<std::string, std::vector<LossPoint>> domain_loss;  // per val domain, by step
  std::vector<std::string> domain_order;                      // val domains as first logged
  std::vector<LossPoint> mean_loss;                           // steps where every val domain was evaluated
  std::vector<LayerLoad> final_load;                          // final eval step (else last train step)
  std::vector<AnalysisPoint> analysis;                        // by step
  std::optional<DomainRouting> routing;

  bool is_moe() const { return kind == "moe"; }
  bool seeded() const { return !seed_runs.empty(); }
  // Its whole budget is trained (every seed's, with seeds): status "done", or the run has reached its
  // planned steps (study.json says "running" until the analysis after the last step is written).
  bool finished() const;
  std::optional<double> final_mean_loss() const;
  std::optional<double> final_domain_loss(const std::string& domain) const;
  // The curve of one validation domain, or with an empty `domain` the mean over domains; nullptr for
  // a domain the run has not evaluated.
  const std::vector<LossPoint>* loss_curve(const std::string& domain) const;
};

// A variant trained at several peak learning rates (docs/study.md, "Learning-rate sweeps"): every run,
// by increasing lr, and the one the report compares (chosen by lr_sweep.h's choose_learning_rate).
struct LrSweep {
  std::string variant;         // the spec's variant name
  std::vector<Variant> runs;   // one per learning rate (each with its seed runs, if any)
  double compare_flops = 0;    // run FLOPs the runs are compared at (0: none evaluated yet)
  std::vector<std::optional<double>> loss;           // per run: mean validation loss there (mean over seeds)
  std::vector<std::map<int64_t, double>> seed_loss;  // per run: each seed's loss there (empty without seeds)
  std::optional<size_t> best;  // the chosen run; nullopt while no run is evaluated
};

// The name the dense pretraining run is shown under (plots, Reproduce section, finding).
inline constexpr const char* kDensePretrainName = "dense pretraining";

struct ReportData {
  std::string name;
  XAxis x_axis = XAxis::kFlops;
  double dense_sunk_flops = 0, extra_compute = 0;
  double dense_sunk_tokens = 0;  // study.json dense.sunk_tokens (0 when absent: a checkpoint given without trainer state)
  // Study only: the run that trained the dense model (study.json dense.pretrain_run; absent when the
  // study was given a checkpoint or the directory is gone), x = 100·(f − sunk)/sunk ∈ [−100, 0].
  std::optional<Variant> dense_pretrain;
  std::vector<std::string> dense_commands;  // study.json dense.commands
  std::vector<std::string> domains;
  std::vector<Variant> variants;
  std::vector<LrSweep> sweeps;       // a study's learning-rate sweeps; each one's chosen run is in `variants`
  std::vector<std::string> sources;  // the directories given

  const Variant* find(const std::string& name) const;
};

// Each dir is a study dir (study.json) or a train run dir (config.json, format "upcycle-train-run");
// either one study dir or any number of run dirs.
ReportData load_report_data(const std::vector<std::filesystem::path>& dirs);

// Curve value at `flops` of the run's own training compute, by linear interpolation; nullopt outside.
std::optional<double> loss_at_flops(const std::vector<LossPoint>& curve, double flops);
// Likewise at `tokens` of the run's own training tokens (the per-token view).
std::optional<double> loss_at_tokens(const std::vector<LossPoint>& curve, double tokens);

}  // namespace upcycle::report
