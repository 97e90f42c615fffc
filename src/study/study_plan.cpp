// See study_plan.h.
#include "study/study_plan.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace upcycle::study {

int64_t steps_for_budget(double budget_flops, double train_flops_per_token, int64_t tokens_per_step) {
  UPCYCLE_CHECK(budget_flops > 0 && train_flops_per_token > 0 && tokens_per_step > 0, "study plan: bad budget");
  const double steps = budget_flops / (train_flops_per_token * double(tokens_per_step));
  return std::max<int64_t>(1, std::llround(steps));
}

int64_t eval_interval(int64_t steps, int64_t evals) {
  UPCYCLE_CHECK(steps > 0 && evals > 0, "study plan: bad eval count");
  return (steps + evals - 1) / evals;
}

int64_t pretrain_save_interval(int64_t pretrain_steps, const std::vector<int64_t>& keep_steps) {
  int64_t g = pretrain_steps;
  for (int64_t s : keep_steps) g = std::gcd(g, s);
  return g;
}

double extra_compute_percent(double sunk_flops, double run_flops, double dense_sunk_flops) {
  return 100.0 * (sunk_flops + run_flops - dense_sunk_flops) / dense_sunk_flops;
}

std::string shell_quote(const std::string& word) {
  const bool plain = !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("-_./:=,+@%").find(c) != std::string_view::npos;
  });
  if (plain) return word;
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string command_line(const std::string& command, const std::vector<std::string>& args) {
  std::string line = "upcycle " + command;
  for (const auto& a : args) line += " " + shell_quote(a);
  return line;
}

}  // namespace upcycle::study
