// The numbers a reader wants first, shared by the terminal table and the page: per variant the final
// mean and per-domain validation loss and Δ against the dense-continuation baseline; for a variant
// trained once per seed, the mean over its seeds, their spread (min–max) and Δ paired by seed (each
// seed against the baseline's run with the same seed, i.e. the same data order). The finding sentence
// is in finding.h. Non-goals: significance tests (the seeds' min–max and signs are shown instead).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "report/run_data.h"
#include "report/seed_runs.h"

namespace upcycle::report {

inline constexpr const char* kBaselineVariant = "dense-continuation";

struct SummaryRow {
  std::string variant, status;
  int64_t steps = 0;
  std::optional<double> x;                    // final position on the report's x axis
  std::optional<double> spent;                // study: 100 · run FLOPs / dense.sunk_flops at that evaluation
  std::optional<double> mean;                 // final mean validation loss (with seeds: the mean over them)
  std::vector<std::optional<double>> domain;  // final loss per ReportData::domains entry
  std::optional<double> delta;                // mean − baseline mean (with seeds: the mean paired difference)
  std::vector<std::optional<double>> domain_delta;
  // With seeds (seeds_listed > 0): seed runs in the final mean, their min–max and the paired Δs' min–max.
  size_t seeds = 0, seeds_listed = 0;
  std::optional<Spread> mean_spread, delta_spread;
  std::vector<std::optional<Spread>> domain_spread, domain_delta_spread;
};
std::vector<SummaryRow> summary_rows(const ReportData& data);

// One number through a printf format with one double conversion ("%.4f"): the report's text cells.
std::string format_number(const char* printf_format, double value);
// "+100 %" (study) or "1.2e+15 FLOPs" (plain runs).
std::string format_x(const ReportData& data, double x);
// Compute spent, a share of the dense pretraining FLOPs: "100 %".
std::string format_spent(double percent);
// "2.44e9" rather than printf's "2.44e+09"; "—" for 0 (unknown).
std::string format_flops(double flops);
// A signed difference "−0.031" / "+0.012" (Unicode minus).
std::string format_delta(double delta);
// Losses over seeds "4.3190–4.3210"; paired differences "−0.0101 … +0.0005" (one value when min = max).
std::string format_loss_range(const Spread& s);
std::string format_delta_range(const Spread& s);
// What the paired differences say: "lower for every seed", "higher for every seed", "sign varies" or
// "one seed" (nothing to compare yet).
std::string paired_verdict(const Spread& differences);

// The plain-text table `upcycle report` prints, at most ~95 columns for three domains and names up to
// 18 characters (short headers, explained in a footnote under a study's table); with seeds, a second
// table of the spread over seeds and the paired differences.
std::string render_summary_table(const ReportData& data);

}  // namespace upcycle::report
