// What a step and an evaluation leave behind: a metrics.jsonl record, TensorBoard scalars and the
// progress line (see docs/training.md for the fields). MoE load is reported as fractions of the kept
// assignments per expert; TensorBoard gets the imbalance max_e(load_e)·E (1 = perfectly balanced).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/units.h"
#include "train/trainer.h"

namespace upcycle::train {

namespace {

Json load_fractions(const std::vector<int64_t>& tokens_per_expert) {
  int64_t kept = 0;
  for (int64_t n : tokens_per_expert) kept += n;
  Json out = Json::array();
  for (int64_t n : tokens_per_expert) out.push_back(kept ? double(n) / double(kept) : 0.0);
  return out;
}

double max_load(const std::vector<int64_t>& tokens_per_expert) {
  int64_t kept = 0, most = 0;
  for (int64_t n : tokens_per_expert) kept += n, most = std::max(most, n);
  return kept ? double(most) * double(tokens_per_expert.size()) / double(kept) : 0.0;
}

double fraction(int64_t part, int64_t whole) { return whole ? double(part) / double(whole) : 0.0; }

std::string layer_tag(int64_t layer, const char* what) { return "moe/layer_" + std::to_string(layer) + "/" + what; }

}  // namespace

void Trainer::log_step(const StepResult& r, Progress& progress) {
  const double tokens_per_s = r.seconds > 0 ? double(tokens_per_step()) / r.seconds : 0.0;
  Json record = {{"kind", "train"},     {"step", r.step},        {"tokens", state_.tokens},
                 {"flops", state_.flops}, {"loss", r.loss},      {"aux", r.aux},
                 {"z", r.z},            {"lr", r.lr},            {"grad_norm", r.grad_norm},
                 {"tokens_per_s", tokens_per_s}, {"skipped", r.skipped}, {"skipped_steps", state_.skipped_steps}};
  const bool dirichlet = moe_options_.has_dirichlet_prior();  // fields only when a prior is set
  if (dirichlet) record["dirichlet"] = r.dirichlet;
  if (!r.moe.empty()) {
    Json layers = Json::array();
    for (const auto& l : r.moe) {
      layers.push_back({{"layer", l.layer},
                        {"load", load_fractions(l.tokens_per_expert)},
                        {"dropped", fraction(l.dropped, l.assignments)},
                        {"entropy", l.router_entropy},
                        {"top1", l.top1_probability},
                        {"aux", l.aux_loss},
                        {"z", l.z_loss}});
      if (dirichlet) layers.back()["dirichlet"] = l.dirichlet_loss;
    }
    record["moe"] = layers;
  }
  metrics_->write(record);

  const double wall = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto& tb = *tensorboard_;
  tb.scalar("train/loss", r.loss, r.step, wall);
  tb.scalar("train/lr", r.lr, r.step, wall);
  tb.scalar("train/grad_norm", r.grad_norm, r.step, wall);
  tb.scalar("train/tokens_per_s", tokens_per_s, r.step, wall);
  tb.scalar("train/skipped_steps", double(state_.skipped_steps), r.step, wall);
  if (!r.moe.empty()) {
    tb.scalar("train/aux", r.aux, r.step, wall);
    tb.scalar("train/z", r.z, r.step, wall);
    if (dirichlet) tb.scalar("train/dirichlet", r.dirichlet, r.step, wall);
    for (const auto& l : r.moe) {
      tb.scalar(layer_tag(l.layer, "max_load"), max_load(l.tokens_per_expert), r.step, wall);
      tb.scalar(layer_tag(l.layer, "dropped"), fraction(l.dropped, l.assignments), r.step, wall);
      tb.scalar(layer_tag(l.layer, "entropy"), l.router_entropy, r.step, wall);
      tb.scalar(layer_tag(l.layer, "top1"), l.top1_probability, r.step, wall);
    }
  }

  char detail[160];
  std::snprintf(detail, sizeof detail, "loss %.4f  lr %.2e  %s tok/s%s", r.loss, r.lr,
                format_count(uint64_t(tokens_per_s)).c_str(), r.skipped ? "  (skipped: non-finite)" : "");
  progress.set_detail(detail);
  progress.advance(1);
  if (r.skipped) {
    char line[200];
    std::snprintf(line, sizeof line, "step %lld skipped: loss %g, gradient norm %g (%lld in a row, %lld in all)",
                  static_cast<long long>(r.step), r.loss, r.grad_norm,
                  static_cast<long long>(state_.consecutive_nonfinite), static_cast<long long>(state_.skipped_steps));
    progress.note(line);
  }
}

void Trainer::log_eval(const std::vector<EvalRecord>& records, Progress& progress) {
  const double wall = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::string line = "eval at step " + std::to_string(state_.step) + ":";
  for (const auto& e : records) {
    Json record = {{"kind", "eval"},   {"step", state_.step}, {"tokens", state_.tokens}, {"flops", state_.flops},
                   {"domain", e.domain}, {"loss", e.loss},     {"ppl", e.perplexity},    {"eval_tokens", e.tokens}};
    if (!e.routing.empty()) {
      Json layers = Json::array();
      for (const auto& l : e.routing)
        layers.push_back({{"layer", l.layer},
                          {"load", load_fractions(l.tokens_per_expert)},
                          {"dropped", fraction(l.dropped, l.assignments)},
                          {"entropy", l.router_entropy},
                          {"top1", l.top1_probability},
                          {"aux", l.aux_loss}});
      record["moe"] = layers;
    }
    metrics_->write(record);
    tensorboard_->scalar("eval/" + e.domain + "/loss", e.loss, state_.step, wall);
    tensorboard_->scalar("eval/" + e.domain + "/ppl", e.perplexity, state_.step, wall);
    char part[160];
    std::snprintf(part, sizeof part, "  %s loss %.4f ppl %.3f", e.domain.c_str(), e.loss, e.perplexity);
    line += part;
  }
  progress.note(line);
}

}  // namespace upcycle::train
