// `upcycle train --model CKPT --data DIR[:WEIGHT]… [--val DIR…] --out RUN_DIR [options]`: continued
// pretraining of a dense or MoE checkpoint (train/trainer.h), and `--out RUN_DIR --resume` to continue
// a run exactly. This file only binds train::TrainOptions to flags (defaults live there) and applies
// the resume rule: flags not given are taken from RUN_DIR/config.json, flags given must equal the
// recorded ones except train::kResumeMutableOptions. Exit: 0 finished or --stop-after, 2 user error or
// fault (non-finite steps, full disk), 128+signal after a SIGINT/SIGTERM stop (checkpoint written).

#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/runtime_flags.h"
#include "cli/command_args.h"
#include "core/error.h"
#include "dist/process_group.h"
#include "train/trainer.h"

namespace upcycle::cli {
namespace {

using train::TrainOptions;

void bind_run(OptionSet& set, TrainOptions& o) {
  set.add("model", "CKPT", "the HF checkpoint to train (dense or MoE, any dtype; e.g. the output of convert)", &o.model);
  set.add_list("data", "DIR[:WEIGHT]",
               "training datasets (`upcycle data tokenize` output, train split), each with an optional mixing "
               "weight (default 1); sequences are drawn from dataset d with probability weight_d / Σ weights",
               &o.data);
  set.add_list("val", "DIR", "datasets whose val split is evaluated (per domain) every --eval-every steps", &o.val);
  set.add("out", "RUN_DIR", "the run directory: config.json, metrics.jsonl, tensorboard/, checkpoints/", &o.out);
  set.add_flag("resume", "continue RUN_DIR from its latest checkpoint with its recorded options", &o.resume);
  set.add_flag("force", "start over in a RUN_DIR that holds an earlier run (deletes it)", &o.force);
  set.add("steps", "N", "optimizer steps of the whole run (raise it with --resume to extend a finished run)", &o.steps);
  set.add("micro-batch", "B", "sequences per forward/backward pass", &o.micro_batch);
  set.add("seq-len", "L", "tokens per sequence (windows of L+1 tokens: inputs and next-token targets)", &o.seq_len);
  set.add("grad-accum", "A",
          "micro-batches per optimizer step and process (global batch = B·L·A·N tokens for N processes "
          "under mpirun/srun)",
          &o.grad_accum);
}

void bind_optimizer(OptionSet& set, TrainOptions& o) {
  set.add_choice("schedule", {"constant", "cosine", "wsd", "inverse-sqrt"},
                 "learning-rate schedule after the warmup (wsd: warmup-stable-decay)", &o.schedule);
  set.add("lr", "LR", "peak learning rate", &o.lr);
  set.add("min-lr", "LR", "final learning rate of cosine and wsd; floor of inverse-sqrt", &o.min_lr);
  set.add("warmup", "N", "linear warmup steps from --warmup-start-lr to --lr", &o.warmup);
  set.add("warmup-start-lr", "LR", "learning rate the warmup starts from (> 0: a re-warmup)", &o.warmup_start_lr);
  set.add("decay-fraction", "F", "wsd: the final fraction of the steps that decays linearly to --min-lr",
          &o.decay_fraction);
  set.add("schedule-offset", "N",
          "inverse-sqrt: steps already taken on the curve (the dense run's step count, to continue its schedule)",
          &o.schedule_offset);
  set.add("timescale", "N", "inverse-sqrt: the step where the decay starts (0: max(--warmup, 1))", &o.timescale);
  set.add("beta1", "B", "AdamW β1", &o.beta1);
  set.add("beta2", "B", "AdamW β2", &o.beta2);
  set.add("eps", "E", "AdamW ε", &o.eps);
  set.add("weight-decay", "W", "AdamW decoupled weight decay (not applied to norms and biases)", &o.weight_decay);
  set.add("clip", "NORM", "clip the global gradient norm to NORM (0: no clipping)", &o.clip);
  set.add_choice("init-optimizer", {"fresh", "from-dense"},
                 "AdamW moments at the start: zero, or a dense run's broadcast to the experts of each layer",
                 &o.init_optimizer);
  set.add("dense-optimizer", "DIR",
          "from-dense: a dense run directory (its latest checkpoint) or a checkpoint with optimizer.safetensors",
          &o.dense_optimizer);
}

// Dirichlet-prior shaping (model/dirichlet_prior.h, docs/recipes.md "Dirichlet-prior shaping").
void bind_dirichlet(OptionSet& set, TrainOptions& o) {
  set.add_list("dirichlet-prior", "A|A1,..,AE|DOMAIN=A1,..,AE",
               "target Dirichlet prior of each token's router probabilities, one α for all experts or one per "
               "expert (larger α_e: expert e gets more probability mass). Its marginal Beta(α_e, Σα−α_e) is "
               "matched per expert over the batch. α < 1: confident, near one-hot routing; α = 1: uniform over "
               "the simplex; α > 1: soft routing near 1/E. Per-domain (asymmetric) priors: one DOMAIN=A1,..,AE "
               "for each domain of the --data mixture (every one named), e.g. web=2,2,0.5,0.5 code=0.5,0.5,2,2: "
               "each token is judged against its domain's prior, the loss weighs domains by their tokens in the "
               "batch; evaluation computes none. Without --dirichlet-coef the distance is only logged (default: "
               "1 when --dirichlet-coef is set)",
               &o.dirichlet_prior);
  set.add("dirichlet-coef", "L",
          "λ of the Dirichlet-prior shaping loss (Cramér–von Mises distance of each expert's probabilities to "
          "the prior's Beta marginal, mean over experts; the paper tunes λ per model); 0: off",
          &o.dirichlet_coef);
  set.add("dirichlet-steps", "N", "apply the Dirichlet-prior loss in the first N steps only (0: every step)",
          &o.dirichlet_steps);
}

void bind_routing(OptionSet& set, TrainOptions& o) {
  set.add_choice("routing", {"token-choice", "expert-choice"},
                 "MoE routing (expert choice sees the whole batch: it leaks future tokens in a causal LM)", &o.routing);
  set.add("top-k", "K", "experts per token for token choice (0: the config's num_experts_per_tok)", &o.top_k);
  set.add("capacity-factor", "CF",
          "expert capacity ceil(T·k/E·CF) for token choice (0: dropless); expert choice: ceil(T·CF/E), required",
          &o.capacity_factor);
  set.add("aux-loss-coef", "C",
          "load-balancing loss coefficient in upcycle's normalisation (1 = balanced); < 0: the config's "
          "router_aux_loss_coef × top-k, the same pull as HF's loss",
          &o.aux_loss_coef);
  set.add("z-loss-coef", "C", "router z-loss coefficient (ST-MoE)", &o.z_loss_coef);
  set.add("jitter", "J", "router input noise ×U(1−J, 1+J) in training (< 0: the config's router_jitter_noise)",
          &o.jitter);
  set.add("expert-bias-rate", "G",
          "aux-loss-free balancing (DeepSeek-V3): per-expert selection bias updated by ±G after each step (0: off).\n"
          "Training state, except for dots1: there it is e_score_correction_bias, read at start and saved with\n"
          "the weights (dots1 has no aux or z loss: sigmoid scores)",
          &o.expert_bias_rate);
  bind_dirichlet(set, o);
}

void bind_run_control(OptionSet& set, TrainOptions& o) {
  set.add("save-every", "N", "write a checkpoint every N steps (and at the end)", &o.save_every);
  set.add("keep", "K", "keep the last K checkpoints", &o.keep);
  set.add("eval-every", "N", "evaluate the --val sets every N steps (0: only at the end)", &o.eval_every);
  set.add("eval-tokens", "N", "predicted tokens evaluated per --val set (its first windows)", &o.eval_tokens);
  set.add_flag("eval-at-start", "also evaluate the --val sets before the first step (step-0 records: where the curve starts)",
               &o.eval_at_start);
  set.add("log-every", "N", "off a terminal: print a progress line every N steps", &o.log_every);
  set.add("max-nonfinite", "N",
          "stop (exit 2) after N steps in a row with a non-finite loss or gradient norm (each is skipped)",
          &o.max_nonfinite);
  set.add("seed", "S", "seed of the data order and the router jitter", &o.seed);
  set.add("stop-after", "N", "stop after N steps of this invocation with a checkpoint (0: run to --steps)",
          &o.stop_after);
  bind_threads_flag(set, &o.threads, "bitwise reproducibility (and an exact resume) needs the same count");
  bind_backend_flag(set, &o.backend);
  set.add("dist-timeout", "S",
          "data parallel: stop the job (exit 2, naming the rank) when a rank has sent nothing for S seconds\n"
          "(hung, stopped, stuck disk); must exceed rank 0's evaluation + checkpoint write, which the others\n"
          "wait through; 0: wait forever",
          &o.dist_timeout);
}

constexpr const char* kEpilog =
    "A session (docs/training.md has the whole story):\n"
    "  upcycle data tokenize --tokenizer base/tokenizer.json --input corpus/*.txt --out data/web \\\n"
    "      --domain web --val-fraction 0.01\n"
    "  upcycle convert base moe --experts 8 --top-k 2\n"
    "  upcycle train --model moe --data data/web --val data/web --out runs/moe --steps 2000 \\\n"
    "      --micro-batch 8 --seq-len 1024 --lr 2e-4 --warmup 100 --save-every 200\n"
    "  # Ctrl-C or SIGTERM: the step finishes, a checkpoint is written, exit 130 / 143\n"
    "  upcycle train --out runs/moe --resume          # continues bit for bit\n"
    "  upcycle train --out runs/moe --resume --steps 3000   # extends a finished run\n"
    "  tensorboard --logdir runs/moe\n"
    "  upcycle eval runs/moe/checkpoints/step-00002000 --data data/web   # any checkpoint is an HF model\n"
    "\n"
    "Data parallel (docs/distributed.md): N processes under an MPI launcher share one global batch of\n"
    "B·L·A·N tokens: each runs A micro-batches of B sequences, gradients are summed over the processes\n"
    "in a fixed order, so a fixed N reproduces bit for bit and N processes match one process with\n"
    "--grad-accum A·N up to float rounding. Rank 0 alone writes metrics, TensorBoard and checkpoints.\n"
    "  mpirun -np 2 --bind-to none upcycle train ... --threads 1   # or: srun -n 2 upcycle train ...\n"
    "  mpirun -np 2 --hostfile hosts --bind-to none upcycle train ...  # across machines (ssh, TCP)\n"
    "A rank that dies stops the job at once; one that hangs stops it after --dist-timeout seconds.\n"
    "\n"
    "--resume takes every flag not given from RUN_DIR/config.json; flags given must equal the recorded\n"
    "ones except --steps, --stop-after, --threads, --eval-every, --save-every, --keep, --log-every,\n"
    "--eval-at-start, --dist-timeout.\n"
    "Exit status: 0 finished (or --stop-after), 2 bad input or a fault (too many non-finite steps, full\n"
    "disk: the last checkpoint stays intact), 128+signal (130 SIGINT, 143 SIGTERM) when stopped by a\n"
    "signal after writing a checkpoint, so job scripts can tell \"resume me\" from \"done\".";

// Json value → the flag text that parses back to it exactly (doubles print round-trip exact).
std::string flag_text(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// --resume: every recorded flag not given is applied; given ones must match unless mutable.
void apply_run_record(OptionSet& set, const Json& record, const std::string& file) {
  const Json now = set.to_json();
  for (const auto& [name, value] : record.at("options").items()) {
    if (!now.contains(name)) throw Error("the run record has an option this upcycle does not know: --" + name, file);
    if (set.given(name)) {
      if (!train::resume_mutable(name) && now[name] != value)
        throw Error("--" + name + " " + flag_text(now[name]) + " differs from the run's recorded " + flag_text(value) +
                        "; on --resume only --steps, --stop-after, --threads, --eval-every, --save-every, --keep, "
                        "--log-every, --eval-at-start and --dist-timeout may change",
                    file);
      continue;
    }
    if (name == "resume" || name == "force" || name == "stop-after") continue;  // per invocation
    if (value.is_boolean()) {
      if (value.get<bool>()) set.set_default(name, "");
      continue;
    }
    if (value.is_array())
      for (const auto& item : value) set.set_default(name, flag_text(item));
    else
      set.set_default(name, flag_text(value));
  }
}

OptionSet train_option_set(TrainOptions& o) {
  OptionSet set("train", "upcycle train --model CKPT --data DIR[:WEIGHT]... [--val DIR...] --out RUN_DIR [options]",
                "Train a dense or MoE checkpoint on tokenized data (AdamW, gradient clipping and accumulation,\n"
                "LR schedules, every MoE routing option), writing atomic checkpoints that every other command\n"
                "loads, metrics.jsonl and TensorBoard event files. --resume continues a run bit for bit.");
  bind_run(set, o);
  bind_optimizer(set, o);
  bind_routing(set, o);
  bind_run_control(set, o);
  set.add_epilog(kEpilog);
  return set;
}

}  // namespace

train::TrainOptions parse_train_args(const Args& args) {
  TrainOptions o;
  OptionSet set = train_option_set(o);
  if (!set.parse(args)) throw Error("--help is not a training option here");
  train::validate_options(o);
  return o;
}

int run_train(const Args& args) {
  TrainOptions o;
  OptionSet set = train_option_set(o);
  if (!set.parse(args)) return 0;
  if (o.resume) {
    if (o.force) throw Error("--resume and --force exclude each other (--force starts the run over)");
    if (o.out.empty()) throw Error("missing --out (the run directory to resume)");
    apply_run_record(set, train::read_run_record(o.out), train::RunPaths{o.out}.config().string());
  }
  apply_threads(o.threads);
  const std::unique_ptr<dist::ProcessGroup> group = dist::open_process_group();  // MPI under mpirun/srun
  group->set_wait_limit(o.dist_timeout);
  train::Trainer trainer(o, set.to_json(), o.resume ? train::RunMode::kResume : train::RunMode::kFresh,
                         train::TestHooks::from_environment(), *group);
  const train::TrainOutcome outcome = trainer.run();
  return outcome.end == train::TrainOutcome::End::kSignal ? 128 + outcome.signal : 0;
}

}  // namespace upcycle::cli
