// The training loop of `upcycle train`: data → model → AdamW, with checkpoints, evaluation, metrics
// and fault handling. One optimizer step (trainer_step.cpp) = grad_accum micro-batches, each
//   batcher.next → set_phase(kTraining, jitter seed) → forward → loss (+ MoE aux/z through backward's
//   coefficients) → backward (grads accumulate),
// then grads × 1/grad_accum, the global gradient norm, a non-finite check (skip: no update, the batch
// is consumed and counted), clipping to --clip, lr = schedule(step), AdamW, the expert-bias update, and
// counters (step, tokens, FLOPs = flops_per_token.train × tokens).
// Invariant: a step is a pure function of (checkpoint state, options): jitter seeds derive from
// (seed, step, micro-batch), the data position and biases are checkpointed, so 10 steps + resume 10
// equals 20 steps bit for bit (same thread count and backend).
// Data parallel (train/data_parallel.h, docs/distributed.md): with a ProcessGroup of N ranks every rank
// runs grad_accum micro-batches of the one global stream, the sums are reduced in rank order before the
// norm, and all ranks take the same step; rank 0 alone writes the run directory, evaluates and prints.
// Files: trainer_setup.cpp (construction, resume), trainer_step.cpp, trainer_eval.cpp,
// trainer_log.cpp (metrics, TensorBoard, progress), trainer.cpp (the loop, checkpoints, stops).
// Non-goals: expert parallel, sharded checkpoints, mixed-precision master weights, dropout.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/json.h"
#include "core/progress.h"
#include "core/stop_signal.h"
#include "data/mixture_batcher.h"
#include "dist/process_group.h"
#include "model/evaluate.h"
#include "model/transformer.h"
#include "train/adamw.h"
#include "train/flops.h"
#include "train/lr_schedule.h"
#include "train/metrics_log.h"
#include "train/run_dir.h"
#include "train/tensorboard_writer.h"
#include "train/train_checkpoint.h"
#include "train/trainer_options.h"

namespace upcycle::train {

enum class RunMode { kFresh, kResume };

// Per MoE layer over one step's micro-batches.
struct LayerStepStats {
  int64_t layer = 0;
  std::vector<int64_t> tokens_per_expert;  // kept assignments
  int64_t assignments = 0, dropped = 0;
  double router_entropy = 0, top1_probability = 0, aux_loss = 0, z_loss = 0;  // means over micro-batches
  double dirichlet_loss = 0;  // unscaled L_dir (mean over micro-batches; 0 without a prior)
};

struct StepResult {
  int64_t step = 0;        // 1-based number of the step just done
  double loss = 0;         // mean cross-entropy over the micro-batches
  double aux = 0, z = 0;   // unscaled L_aux and L_z, means over MoE layers and micro-batches
  double dirichlet = 0;    // unscaled L_dir, the same mean
  double lr = 0;
  double grad_norm = 0;    // before clipping
  bool skipped = false;    // non-finite loss or gradient norm: no update
  double seconds = 0;      // wall time of the step
  double data_seconds = 0; // of which batcher.next
  double engine_seconds = 0;  // of which forward, loss, backward and the AdamW update (the raw engine step)
  double comm_seconds = 0;    // of which the reductions over the ranks (0 for one process)
  std::vector<LayerStepStats> moe;
};

struct EvalRecord {
  std::string domain;
  double loss = 0, perplexity = 0;
  int64_t tokens = 0;
  std::vector<model::LayerRoutingSummary> routing;
};

struct TrainOutcome {
  enum class End { kFinished, kStopAfter, kSignal };
  End end = End::kFinished;
  int64_t step = 0;  // steps done in the whole run
  int signal = 0;    // End::kSignal: SIGINT or SIGTERM
  std::filesystem::path checkpoint;  // the last checkpoint written
};

class Trainer {
 public:
  // Validates everything that can be checked before training (options, model, data ids < vocab,
  // run directory), loads the model and, for kResume, the latest checkpoint of options.out. Prepares
  // the run directory and writes RUN_DIR/config.json. `options_json` is the record of every flag.
  // `group`: the data-parallel ranks (must outlive the trainer); every rank constructs with the same
  // options. On kResume rank 0 constructs first (it may clean the checkpoint directory), then the rest.
  Trainer(TrainOptions options, Json options_json, RunMode mode, TestHooks hooks = {},
          dist::ProcessGroup& group = dist::single_process_group());
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains to options.steps (or --stop-after, or a stop signal), checkpointing and evaluating on the
  // way; Error for faults (too many non-finite steps, write failures) after logging what happened.
  TrainOutcome run();

  // One optimizer step, without logging, evaluation or checkpoints (tests, bench).
  StepResult step();
  std::vector<EvalRecord> evaluate();
  std::filesystem::path save_checkpoint();
  // A step's metrics.jsonl record, TensorBoard scalars and progress line (run() calls it after step()).
  void log_step(const StepResult& r, Progress& progress);

  model::Transformer& model() { return *model_; }
  AdamW& optimizer() { return *optimizer_; }
  const TrainerState& state() const { return state_; }
  const FlopsPerToken& flops_per_token() const { return flops_; }
  // The global batch: B·L·A per rank × N ranks.
  int64_t tokens_per_step() const {
    return options_.micro_batch * options_.seq_len * options_.grad_accum * group_.size();
  }
  const RunPaths& run_paths() const { return run_; }

 private:
  struct ValSet {
    std::string domain;
    std::filesystem::path dir;
    std::vector<int32_t> tokens;  // whole windows of seq_len+1
  };
  // trainer_setup.cpp
  void construct();
  void open_data(const ModelConfig& config);
  void load_model(const std::filesystem::path& dir);
  void init_optimizer();
  void restore(const std::filesystem::path& checkpoint);
  Json run_record() const;
  Json dirichlet_domain_record() const;
  std::string options_digest() const;
  // trainer_step.cpp
  uint64_t jitter_seed(int64_t step, int64_t global_micro) const;
  void accumulate_moe_stats(StepResult& r) const;
  void update_expert_bias(const StepResult& r);
  void end_dirichlet_shaping_if_due();
  // trainer_log.cpp
  void log_eval(const std::vector<EvalRecord>& records, Progress& progress);
  // trainer.cpp
  bool save_due(int64_t step) const;
  bool eval_due(int64_t step) const;
  [[noreturn]] void fail_nonfinite(const StepResult& r);
  TrainOutcome stop(TrainOutcome::End end, int signal, Progress& progress);
  int agreed_stop_signal(const StopSignalGuard& signals);
  bool is_writer() const { return group_.rank() == 0; }

  TrainOptions options_;
  Json options_json_;
  RunMode mode_;
  TestHooks hooks_;
  dist::ProcessGroup& group_;
  RunPaths run_;
  ModelConfig config_;
  std::filesystem::path side_files_from_;
  std::unique_ptr<backend::Backend> backend_;
  std::unique_ptr<model::Transformer> model_;
  model::MoeOptions moe_options_;
  bool dirichlet_shaping_ = false;  // the model's layers currently train with dirichlet_coef (until --dirichlet-steps)
  std::optional<AdamW> optimizer_;
  LrSchedule schedule_;
  FlopsPerToken flops_;
  std::optional<data::MixtureBatcher> batcher_;
  std::vector<DataSource> sources_;
  std::vector<ValSet> val_;
  TrainerState state_;
  std::optional<std::filesystem::path> last_checkpoint_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
  std::vector<int32_t> ids_BL_, targets_BL_, domain_B_;
  const StopSignalGuard* signals_ = nullptr;  // while run() is running
};

}  // namespace upcycle::train
