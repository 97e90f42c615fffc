// See finding.h.
#include "report/finding.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "report/seed_runs.h"
#include "report/summary_table.h"

namespace upcycle::report {
namespace {

// Where the finding compares the variants. Once every evaluated run has finished the same budget, at
// their final evaluations: the numbers of the table, although the runs' final FLOPs differ by up to
// a step (a variant whose steps cost more stops a little earlier). Otherwise every curve is
// interpolated at the most compute all of them have reached, and the sentence says so.
struct ComparePoint {
  bool final = true;
  double flops = 0;       // run FLOPs compared at (final: the shared budget)
  std::string qualifier;  // "" for final evaluations, else why and how values were interpolated
};

ComparePoint compare_point(const ReportData& data) {
  double f_common = std::numeric_limits<double>::infinity(), budget = -1;
  size_t training = 0;
  bool equal_budgets = true;
  for (const auto& v : data.variants) {
    if (v.mean_loss.empty()) continue;
    f_common = std::min(f_common, v.mean_loss.back().flops);
    training += !v.finished();
    if (budget < 0) budget = v.budget_flops;
    equal_budgets = equal_budgets && v.budget_flops > 0 && std::fabs(v.budget_flops - budget) <= 1e-9 * budget;
  }
  if (training == 0 && equal_budgets) return {true, budget, ""};
  const std::string why = training ? std::to_string(training) + " variant" + (training > 1 ? "s" : "") + " still training"
                                   : "the budgets differ";
  return {false, f_common, " (values interpolated at that compute between evaluations: " + why + ")"};
}

// One variant at the compare point: its mean validation loss (the table's number when final; the
// mean over seeds with seeds) and, with seeds, each seed's.
struct At {
  std::string name;
  double loss = 0;
  std::map<int64_t, double> by_seed;
};

std::optional<At> at_point(const Variant& v, const ComparePoint& cp) {
  if (v.mean_loss.empty()) return std::nullopt;
  if (cp.final) return At{v.name, v.mean_loss.back().loss, seed_losses_at_step(v, v.mean_loss.back().step)};
  const std::optional<double> loss = loss_at_flops(v.mean_loss, cp.flops);
  if (!loss) return std::nullopt;
  return At{v.name, *loss, seed_losses_at_flops(v, cp.flops)};
}

// "4.3635", or with seeds "4.3635; mean of 3 seeds, 4.3600–4.3670".
std::string value_text(const At& a) {
  std::string s = format_number("%.4f", a.loss);
  const std::optional<Spread> sp = spread(a.by_seed);
  if (!sp) return s;
  if (sp->n == 1) return s + "; seed " + std::to_string(a.by_seed.begin()->first) + " only";
  return s + "; mean of " + std::to_string(sp->n) + " seeds, " + format_loss_range(*sp);
}

// ", 0.0061 below <label> (…)" and, with seeds, whether every seed's paired difference has the sign
// of the advantage: the same sign for every data order, or a difference within the noise.
std::string comparison_text(const At& best, const At& other, const std::string& label) {
  const std::optional<Spread> d = spread(paired_differences(best.by_seed, other.by_seed));
  const double gap = d ? -d->mean : other.loss - best.loss;  // with seeds, −(the table's mean paired Δ)
  std::string s = ", " + format_number("%.4f", gap) + " below " + label + " (" + value_text(other) + ")";
  if (!d) return s;
  if (d->n < 2) return s + "; only one seed is evaluated by both so far, so the noise is not known yet";
  s += "; paired by seed (same data order) the difference is " + format_delta(d->min) + " to " + format_delta(d->max);
  return s + (d->max < 0 ? ", lower for every seed: the advantage holds"
                         : ", its sign varies between seeds: the advantage is within the noise");
}

// An MoE trained from scratch against the dense model it would replace (its start point at 0 %).
std::string from_scratch_text(const ReportData& data) {
  const std::optional<double> dense = data.dense_pretrain ? data.dense_pretrain->final_mean_loss() : std::nullopt;
  if (data.x_axis != XAxis::kExtraComputePercent || !dense) return "";
  std::string s;
  for (const auto& v : data.variants) {
    if (v.sunk_flops != 0 || v.mean_loss.empty()) continue;
    const double loss = v.mean_loss.back().loss, spent = 100.0 * v.mean_loss.back().flops / data.dense_sunk_flops;
    const size_t seeds = seed_losses_at_step(v, v.mean_loss.back().step).size();
    s += " " + v.name + ", after " + format_number("%.0f", spent) + " % of the dense pretraining compute, reaches " +
         format_number("%.4f", loss) + (seeds > 1 ? " (mean of " + std::to_string(seeds) + " seeds)" : "") +
         " against the dense model's " + format_number("%.4f", *dense) +
         (loss <= *dense ? ": it has caught up" : ": it has not caught up") + " (Komatsuzaki et al. report ≈120 % needed).";
  }
  return s;
}

}  // namespace

std::string finding_sentence(const ReportData& data) {
  size_t evaluated = 0, pending = 0;
  for (const auto& v : data.variants) {
    if (!v.started) ++pending;
    evaluated += !v.mean_loss.empty();
  }
  const std::string tail = pending ? " (" + std::to_string(pending) + " variant" + (pending > 1 ? "s" : "") +
                                         " not started yet)" : "";
  if (evaluated == 0) return "No validation results yet" + tail + ".";
  const ComparePoint cp = compare_point(data);
  std::vector<At> at;
  for (const auto& v : data.variants)
    if (std::optional<At> a = at_point(v, cp)) at.push_back(std::move(*a));
  std::sort(at.begin(), at.end(), [](const At& a, const At& b) { return a.loss < b.loss; });
  const std::string where = (data.x_axis == XAxis::kFlops
                                 ? "After " + format_flops(cp.flops) + " training FLOPs"
                                 : "After training compute equal to " + format_number("%.0f", 100 * cp.flops / data.dense_sunk_flops) +
                                       " % of the dense pretraining cost") +
                            cp.qualifier;
  const At& best = at.front();
  std::string s = where + ", " + best.name + " has the lowest mean validation loss (" + value_text(best) + ")";
  auto base = std::find_if(at.begin(), at.end(), [](const At& a) { return a.name == kBaselineVariant; });
  if (at.size() == 1)
    s += "; no other variant has been evaluated that far";
  else if (base != at.end() && base != at.begin())
    s += comparison_text(best, *base, kBaselineVariant);
  else
    s += comparison_text(best, at[1], "the runner-up, " + at[1].name);
  return s + tail + "." + from_scratch_text(data);
}

}  // namespace upcycle::report
