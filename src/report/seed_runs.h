// A study variant trained once per seed (study.json "runs", docs/study.md "Seeds"): its seed runs
// folded into the mean curves every plot and table shows, and the per-seed values behind the spread
// (min–max over the seeds) and the differences paired by seed (same seed = same data order).
// Invariant: a mean curve has a point only at steps every started seed run has evaluated, so the mean
// at its last point is the mean of the seeds' values there (seed_losses_at_step); while a seed is
// still training the curve stops where that seed is. Non-goals: confidence intervals (with 2–5 seeds
// the min–max and the signs of the paired differences say more).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "report/run_data.h"

namespace upcycle::report {

// Fills v's curves, analysis points, progress, loads and routing from v.seed_runs.
void aggregate_seed_runs(Variant& v);

// Each seed run's loss at `step`: the mean over the domains (domain empty) or one domain's. Seeds
// without that evaluation are left out; an unseeded variant gives an empty map.
std::map<int64_t, double> seed_losses_at_step(const Variant& v, int64_t step, const std::string& domain = "");
// Each seed run's mean loss at `flops` of its own training compute, interpolated (loss_at_flops).
std::map<int64_t, double> seed_losses_at_flops(const Variant& v, double flops);

struct Spread {
  double mean = 0, min = 0, max = 0;
  size_t n = 0;
};
// Over the values of the map; nullopt when it is empty.
std::optional<Spread> spread(const std::map<int64_t, double>& by_seed);
// a[s] − b[s] for every seed s in both.
std::map<int64_t, double> paired_differences(const std::map<int64_t, double>& a, const std::map<int64_t, double>& b);

}  // namespace upcycle::report
