// Everything `upcycle train` can be told, with every default, in one struct: cli/cmd_train.cpp binds
// each field to its flag (name, help) and the same binding records the options in RUN_DIR/config.json.
// Routing fields use sentinels meaning "the checkpoint's config decides" (top_k 0, jitter and
// aux_loss_coef < 0), resolved by resolve_moe_options. Invariants: a run's math is a function of these
// options and its checkpoint state; only the fields named in kResumeMutableOptions may differ on
// --resume. TestHooks are never flags: cmd_train fills them from documented environment variables.
// Non-goals: config files for flags, per-parameter-group options.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "io/model_config.h"
#include "train/flops.h"
#include "model/moe_layer.h"

namespace upcycle::train {

struct TrainOptions {
  // What to train, on what, and where.
  std::string model;               // --model CKPT
  std::vector<std::string> data;   // --data DIR[:WEIGHT]…
  std::vector<std::string> val;    // --val DIR…
  std::string out;                 // --out RUN_DIR
  bool resume = false;
  bool force = false;
  // Steps and batch shape: tokens per step = micro_batch · seq_len · grad_accum.
  int64_t steps = 1000;
  int64_t micro_batch = 4;
  int64_t seq_len = 512;
  int64_t grad_accum = 1;
  // Learning rate (train/lr_schedule.h).
  std::string schedule = "cosine";
  double lr = 3e-4;
  double min_lr = 3e-5;
  int64_t warmup = 0;
  double warmup_start_lr = 0.0;
  double decay_fraction = 0.2;
  int64_t schedule_offset = 0;
  int64_t timescale = 0;
  // AdamW (train/adamw.h) and clipping.
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double clip = 1.0;
  std::string init_optimizer = "fresh";  // fresh | from-dense
  std::string dense_optimizer;           // RUN_DIR or checkpoint dir holding optimizer.safetensors
  // MoE routing (model/moe_layer.h); sentinels defer to the checkpoint's config.
  std::string routing = "token-choice";  // token-choice | expert-choice
  int64_t top_k = 0;                     // 0: config's num_experts_per_tok
  double capacity_factor = 0.0;          // 0: dropless token choice
  double aux_loss_coef = -1.0;           // < 0: config's router_aux_loss_coef × top-k
  double z_loss_coef = 0.0;
  double jitter = -1.0;                  // < 0: config's router_jitter_noise
  double expert_bias_rate = 0.0;         // γ of aux-loss-free balancing; 0 = off
  // Dirichlet-prior shaping of the router (model/dirichlet_prior.h): one "α" or "α1,…,αE" for every
  // token, or one "DOMAIN=α1,…,αE" per domain of the --data mixture (none: 1 when the coefficient is
  // set, else off; a prior with coefficient 0 is measured and logged, not trained).
  std::vector<std::string> dirichlet_prior;
  double dirichlet_coef = 0.0;           // λ
  int64_t dirichlet_steps = 0;           // apply λ in the first N steps only (0: every step)
  // Checkpoints, evaluation, logging, faults.
  int64_t save_every = 100;
  int64_t keep = 3;
  int64_t eval_every = 100;   // 0: only at the end
  int64_t eval_tokens = 131072;
  bool eval_at_start = false;  // also evaluate before the first step (step-0 records: the start point of a curve)
  int64_t log_every = 10;
  int64_t max_nonfinite = 5;
  // Runtime.
  uint64_t seed = 1;
  int64_t stop_after = 0;     // 0: run to --steps
  int64_t threads = 0;        // 0: all cores
  // Data parallel: the longest wait on another rank before the job is stopped as hung (0: forever). It
  // must cover rank 0's evaluations and checkpoint writes, which the other ranks wait through.
  double dist_timeout = 1800;
  std::string backend = "cpu";
};

// Flags that may differ from the recorded ones on --resume (none changes the training math).
// `stop-after` is per invocation (never inherited); the others, when not given, keep their recorded
// values. `out` may differ because a run directory may be moved; `resume`/`force` say how this
// invocation starts.
inline constexpr std::array<std::string_view, 12> kResumeMutableOptions = {
    "steps",    "stop-after", "threads", "eval-every", "save-every",   "keep",
    "log-every", "out",       "resume",  "force",      "eval-at-start", "dist-timeout"};
bool resume_mutable(std::string_view option);

// Fault injection for tests (documented in docs/training.md, "Testing hooks").
struct TestHooks {
  std::vector<int64_t> nan_steps;        // UPCYCLE_TEST_NAN_STEPS="3,7": these steps' gradients get a NaN
  int64_t checkpoint_pause_step = -1;    // UPCYCLE_TEST_CHECKPOINT_PAUSE=S: sleep mid-write of step S's checkpoint
  // Reads the variables above; Error naming the variable when malformed.
  static TestHooks from_environment();
};

struct DataSource {
  std::filesystem::path dir;
  double weight = 1.0;
};
// "DIR" or "DIR:WEIGHT" (weight > 0); a trailing ":x" that is not a number belongs to the path.
DataSource parse_data_source(const std::string& spec);

// Checks ranges and combinations that need no file (steps ≥ 1, keep ≥ 1, …); Error naming the flag.
void validate_options(const TrainOptions& options);

// The routing of every MoE layer for training: the config's (moe_options_from_config) overridden by
// the options that were set. Error when routing flags are given for a dense model or contradict
// (expert choice without a capacity factor, top-k > experts).
// A per-domain --dirichlet-prior is checked for form here and resolved by resolve_domain_dirichlet_prior.
model::MoeOptions resolve_moe_options(const TrainOptions& options, const ModelConfig& config);

// The per-domain form of --dirichlet-prior (DOMAIN=α or DOMAIN=α1,…,αE, one per domain): row d of the
// result is the prior of the tokens of mixture dataset d, whose domain name is domains[d]; empty for the
// plain form. Error naming the domain when a name is not in the mixture (listing its domains), a domain
// of the mixture has no prior, or a domain is given twice.
std::vector<std::vector<double>> resolve_domain_dirichlet_prior(const TrainOptions& options, int64_t num_experts,
                                                                const std::vector<std::string>& domains);

// FLOPs per token of a run of `config` with these options (routing resolved as above: top-k, or the
// capacity factor for expert choice), as the trainer counts them.
FlopsPerToken run_flops_per_token(const TrainOptions& options, const ModelConfig& config);

}  // namespace upcycle::train
