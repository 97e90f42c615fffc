// The per-token view (docs/study.md, "Per token and per FLOP"): a top-2 MoE layer costs more FLOPs
// per token than the dense layer it replaces, so an MoE variant can learn more from each token and
// still lose at equal compute. For each MoE variant against the dense-continuation baseline: the
// difference in mean validation loss at equal training tokens ("learns faster per token") and at equal
// training FLOPs ("wins per FLOP"), each at the most of that quantity both runs have reached (the
// other curve interpolated between evaluations), with seeds on the mean curves. Once both have
// finished the same budget, the per-FLOP difference is that of their final evaluations (at the
// budget), the summary table's Δ, although their final FLOPs differ by up to a step. Needs the baseline;
// without it there is nothing to compare against and no rows. Non-goals: per-domain views.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "report/run_data.h"

namespace upcycle::report {

struct TokenViewRow {
  std::string variant;
  double cost_ratio = 0;                              // its training FLOPs per token ÷ the baseline's (0: unknown)
  std::optional<double> tokens, per_token_delta;      // variant − baseline mean loss at equal training tokens
  std::optional<double> flops, per_flop_delta;        // … and at equal training FLOPs (the run's own compute)
};
std::vector<TokenViewRow> token_view_rows(const ReportData& data);

// "upcycle learns faster per token (−0.0123 at 1.6e5 tokens) but loses per FLOP (+0.0040 at 2.1e12
// FLOPs): each token costs 1.31× the FLOPs of a dense-continuation token." Empty when a delta is
// missing (a run not evaluated yet).
std::string token_view_sentence(const TokenViewRow& row);
// Every MoE variant's sentence, space-separated ("" without rows).
std::string token_view_text(const ReportData& data);

}  // namespace upcycle::report
