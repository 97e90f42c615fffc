// The arithmetic of a study's plan, kept pure so it can be tested by hand: every variant gets the
// same extra compute (a fraction of the dense model's pretraining FLOPs), turned into optimizer
// steps by its own cost per step, and the same number of evaluations spread over its run.
//   steps        = max(1, round(budget_flops / (train_flops_per_token · tokens_per_step)))
//   eval_every   = ceil(steps / evals)        (so at most `evals` evaluations, plus the final one)
//   report x     = 100 · (sunk_flops + run_flops − dense_sunk_flops) / dense_sunk_flops   (docs/study.md)
// A variant's FLOPs overshoot the budget by less than one step's cost.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace upcycle::study {

int64_t steps_for_budget(double budget_flops, double train_flops_per_token, int64_t tokens_per_step);
int64_t eval_interval(int64_t steps, int64_t evals);
// Pretraining checkpoint interval: the greatest common divisor of the final step and every kept step,
// so each of them is written (and kept) without writing every step.
int64_t pretrain_save_interval(int64_t pretrain_steps, const std::vector<int64_t>& keep_steps);
double extra_compute_percent(double sunk_flops, double run_flops, double dense_sunk_flops);

// One shell word: printed as is when it needs no quoting, else in single quotes.
std::string shell_quote(const std::string& word);
std::string command_line(const std::string& command, const std::vector<std::string>& args);

}  // namespace upcycle::study
