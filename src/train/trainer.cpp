// The loop (see trainer.h): step → log → fault check → evaluate when due → checkpoint when due or when
// stopping. Stops: --steps reached (finished), --stop-after N steps of this process, or SIGINT/SIGTERM
// (StopSignalGuard: the step in flight finishes, a checkpoint is written, and the caller exits 128+sig).
// Data parallel: the ranks stop together (a signal seen by any rank stops all after the same step);
// rank 0 alone logs, evaluates and writes checkpoints, the others wait for it at the end.
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include "core/error.h"
#include "core/stop_signal.h"
#include "train/trainer.h"

namespace upcycle::train {
namespace fs = std::filesystem;

bool Trainer::save_due(int64_t step) const { return step % options_.save_every == 0 || step == options_.steps; }

bool Trainer::eval_due(int64_t step) const {
  return !val_.empty() && ((options_.eval_every > 0 && step % options_.eval_every == 0) || step == options_.steps);
}

fs::path Trainer::save_checkpoint() {
  if (!is_writer()) {  // every rank holds the same state: rank 0 writes it
    last_checkpoint_ = run_.checkpoints() / checkpoint_dir_name(state_.step);
    return *last_checkpoint_;
  }
  metrics_->sync();  // the log through this step is durable before the checkpoint that resumes after it
  tensorboard_->flush();
  state_.data = batcher_->state();
  state_.expert_bias.clear();
  if (options_.expert_bias_rate > 0)
    for (int64_t l = 0; l < config_.num_hidden_layers; ++l)
      if (config_.is_moe_layer(l)) state_.expert_bias[l] = model_->expert_bias(l).to_host();  // readback
  std::function<void()> pause;
  if (hooks_.checkpoint_pause_step == state_.step)  // test hook: a window to kill the process mid-write
    pause = [this] {
      for (int i = 0; i < 1200 && !(signals_ && signals_->requested()); ++i) ::usleep(50'000);
    };
  const fs::path dir = write_train_checkpoint(
      run_.checkpoints(), {config_, model_->params(), *optimizer_, state_, side_files_from_}, pause);
  side_files_from_ = dir;  // the checkpoint resumed from may be pruned next
  prune_checkpoints(run_.checkpoints(), options_.keep);
  last_checkpoint_ = dir;
  return dir;
}

void Trainer::fail_nonfinite(const StepResult& r) {
  const int64_t n = state_.consecutive_nonfinite;
  char what[256];
  std::snprintf(what, sizeof what,
                "%lld non-finite steps in a row (steps %lld-%lld; last loss %g, gradient norm %g; --max-nonfinite "
                "%lld): training stopped, ",
                static_cast<long long>(n), static_cast<long long>(r.step - n + 1), static_cast<long long>(r.step),
                r.loss, r.grad_norm, static_cast<long long>(options_.max_nonfinite));
  if (last_checkpoint_)
    throw Error(std::string(what) + "the last good checkpoint is intact", last_checkpoint_->string());
  throw Error(std::string(what) + "no checkpoint had been written yet", run_.root.string());
}

// The stop signal any rank has seen (the lowest signal number when several have): every rank stops
// after the same step, so rank 0's checkpoint holds the state all of them reached.
int Trainer::agreed_stop_signal(const StopSignalGuard& signals) {
  const int own = signals.requested() ? signals.signal() : 0;
  if (group_.size() == 1) return own;
  group_.set_activity("the stop agreement after step " + std::to_string(state_.step));
  int agreed = 0;
  for (int64_t s : group_.all_gather(own))
    if (s != 0 && (agreed == 0 || s < agreed)) agreed = int(s);
  return agreed;
}

TrainOutcome Trainer::stop(TrainOutcome::End end, int signal, Progress& progress) {
  group_.set_activity("the end of the run at step " + std::to_string(state_.step));
  group_.barrier();  // the other ranks exit only once rank 0's last checkpoint is committed
  progress.finish();
  TrainOutcome out{end, state_.step, signal, last_checkpoint_.value_or(fs::path())};
  if (!is_writer()) return out;
  const long long step = state_.step, steps = options_.steps;
  if (end == TrainOutcome::End::kFinished) {
    std::printf("trained %s to step %lld: %lld tokens, %.3g FLOPs, %lld skipped steps; final checkpoint %s\n",
                run_.root.c_str(), step, static_cast<long long>(state_.tokens), state_.flops,
                static_cast<long long>(state_.skipped_steps), out.checkpoint.c_str());
    return out;
  }
  const char* why = end == TrainOutcome::End::kStopAfter ? "--stop-after"
                    : signal == SIGINT                   ? "SIGINT"
                                                         : "SIGTERM";
  std::printf("stopped by %s at step %lld of %lld; checkpoint %s\nresume with: upcycle train --out %s --resume\n", why,
              step, steps, out.checkpoint.c_str(), run_.root.c_str());
  return out;
}

TrainOutcome Trainer::run() {
  StopSignalGuard signals;
  signals_ = &signals;
  struct Reset {
    const StopSignalGuard*& p;
    ~Reset() { p = nullptr; }
  } reset{signals_};
  const int64_t first = state_.step;
  Progress progress("train", uint64_t(options_.steps), "steps");
  progress.start_at(uint64_t(first));
  progress.set_log_every(uint64_t(options_.log_every));
  if (first >= options_.steps) {
    if (is_writer())
      std::printf("%s is at step %lld of --steps %lld: nothing to do (a larger --steps extends the run)\n",
                  run_.root.c_str(), static_cast<long long>(first), static_cast<long long>(options_.steps));
    return {TrainOutcome::End::kFinished, first, 0, last_checkpoint_.value_or(fs::path())};
  }
  // Step-0 records are kept by a resume that found no checkpoint, so the start is evaluated only once.
  if (is_writer() && options_.eval_at_start && first == 0 && !val_.empty() && metrics_->kept_records() == 0)
    log_eval(evaluate(), progress);
  while (state_.step < options_.steps) {
    const StepResult r = step();
    if (is_writer()) log_step(r, progress);
    if (state_.consecutive_nonfinite >= options_.max_nonfinite) fail_nonfinite(r);
    if (is_writer() && eval_due(state_.step)) log_eval(evaluate(), progress);
    const bool stop_after =
        options_.stop_after > 0 && state_.step - first >= options_.stop_after && state_.step < options_.steps;
    const int signal = agreed_stop_signal(signals);
    if (save_due(state_.step) || stop_after || signal) save_checkpoint();
    if (signal) return stop(TrainOutcome::End::kSignal, signal, progress);
    if (stop_after) return stop(TrainOutcome::End::kStopAfter, 0, progress);
  }
  return stop(TrainOutcome::End::kFinished, 0, progress);
}

}  // namespace upcycle::train
