// See lr_sweep.h.
#include "report/lr_sweep.h"

#include <algorithm>
#include <limits>

#include "report/seed_runs.h"

namespace upcycle::report {

void choose_learning_rate(LrSweep& sweep) {
  double flops = std::numeric_limits<double>::infinity();
  for (const Variant& run : sweep.runs)
    if (!run.mean_loss.empty()) flops = std::min(flops, run.mean_loss.back().flops);
  sweep.loss.assign(sweep.runs.size(), std::nullopt);
  sweep.seed_loss.assign(sweep.runs.size(), {});
  sweep.best.reset();
  sweep.compare_flops = 0;
  if (flops == std::numeric_limits<double>::infinity()) return;
  sweep.compare_flops = flops;
  for (size_t i = 0; i < sweep.runs.size(); ++i) {
    sweep.loss[i] = loss_at_flops(sweep.runs[i].mean_loss, flops);
    sweep.seed_loss[i] = seed_losses_at_flops(sweep.runs[i], flops);
    // Strictly lower wins, so with runs by increasing lr a tie keeps the smaller learning rate.
    if (sweep.loss[i] && (!sweep.best || *sweep.loss[i] < *sweep.loss[*sweep.best])) sweep.best = i;
  }
}

void fold_lr_sweeps(ReportData& data) {
  std::vector<Variant> variants;
  for (Variant& v : data.variants) {
    if (v.sweep.empty()) {
      variants.push_back(std::move(v));
      continue;
    }
    auto sweep = std::find_if(data.sweeps.begin(), data.sweeps.end(), [&](const LrSweep& s) { return s.variant == v.sweep; });
    if (sweep == data.sweeps.end()) {
      data.sweeps.push_back({v.sweep, {}, 0, {}, {}, std::nullopt});
      sweep = data.sweeps.end() - 1;
      Variant placeholder;  // replaced by the chosen run below, keeping the sweep's place in the order
      placeholder.sweep = v.sweep;
      variants.push_back(std::move(placeholder));
    }
    sweep->runs.push_back(std::move(v));
  }
  for (LrSweep& sweep : data.sweeps) {
    std::stable_sort(sweep.runs.begin(), sweep.runs.end(), [](const Variant& a, const Variant& b) { return *a.lr < *b.lr; });
    choose_learning_rate(sweep);
    Variant chosen = sweep.runs[sweep.best.value_or(0)];
    chosen.name = sweep.variant;
    for (Variant& slot : variants)
      if (slot.sweep == sweep.variant && slot.run_dir.empty() && !slot.lr) slot = std::move(chosen);
  }
  data.variants = std::move(variants);
}

}  // namespace upcycle::report
