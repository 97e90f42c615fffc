// The numbers a reader wants first, shared by the terminal table and the page: per variant the final
// mean and per-domain validation loss, Δ against the dense-continuation baseline, and a one-sentence
// finding computed at equal compute. Non-goals: statistics across seeds.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "report/run_data.h"

namespace upcycle::report {

inline constexpr const char* kBaselineVariant = "dense-continuation";

struct SummaryRow {
  std::string variant, status;
  int64_t steps = 0;
  std::optional<double> x;                    // final position on the report's x axis
  std::optional<double> spent;                // study: 100 · run FLOPs / dense.sunk_flops at that evaluation
  std::optional<double> mean;                 // final mean validation loss
  std::vector<std::optional<double>> domain;  // final loss per ReportData::domains entry
  std::optional<double> delta;                // mean − baseline mean
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

// The plain-text table `upcycle report` prints, at most ~95 columns for three domains and names up to
// 18 characters (short headers, explained in a footnote under a study's table).
std::string render_summary_table(const ReportData& data);

// Which variant has the lowest mean validation loss at equal training compute, and by how much against
// dense-continuation (else the runner-up). When every evaluated run has finished the same budget
// (Variant::finished, equal budget_flops) it compares their final evaluations, the very numbers of the
// table, although their final FLOPs differ by up to a step; otherwise every curve is interpolated at
// the most training compute all evaluated runs have reached, and the sentence says so. Then, for each
// evaluated variant trained from scratch (sunk_flops 0) when the dense pretraining run is known, whether
// its final mean validation loss has caught up with the dense model's (the pretraining run's final
// evaluation). Computed from the data, never fixed text.
std::string finding_sentence(const ReportData& data);

}  // namespace upcycle::report
