// The report's finding sentence against its own table (report/finding.h): finished runs are
// compared at their final evaluations, the table's numbers, even when one run ends a step earlier;
// only runs still training are compared on interpolated curves, and the sentence says so. Numbers
// are hand-computed from the curves below.
#include <gtest/gtest.h>

#include "report/run_data.h"
#include "report/finding.h"
#include "report/summary_table.h"

namespace upcycle::report {
namespace {

// A finished study variant with mean-loss evaluations at (run FLOPs, loss); sunk cost = the dense
// model's (1e12), budget 1e12, 10 planned steps.
Variant finished_variant(const std::string& name, const std::vector<std::pair<double, double>>& evals) {
  Variant v;
  v.name = name;
  v.status = "done";
  v.started = true;
  v.sunk_flops = 1e12;
  v.budget_flops = 1e12;
  v.planned_steps = v.steps_done = 10;
  for (size_t i = 0; i < evals.size(); ++i) {
    const auto [flops, loss] = evals[i];
    v.mean_loss.push_back({int64_t(i * 5), flops, extra_compute_percent(1e12, flops, 1e12), loss, flops / 1e9});
  }
  return v;
}

ReportData two_finished_runs() {
  ReportData d;
  d.name = "finding";
  d.x_axis = XAxis::kExtraComputePercent;
  d.dense_sunk_flops = 1e12;
  d.extra_compute = 1.0;
  d.variants.push_back(finished_variant("dense-continuation", {{0, 5.0}, {5e11, 4.5}, {1e12, 4.3205}}));
  // Its steps cost a little more: it ends 2e9 FLOPs (a fraction of a step) short of the other run.
  d.variants.push_back(finished_variant("upcycle-top1", {{0, 5.0}, {4.99e11, 4.4}, {9.98e11, 4.3199}}));
  return d;
}

TEST(ReportFinding, FinishedRunsQuoteTheTablesFinalNumbers) {
  const ReportData d = two_finished_runs();
  const std::string table = render_summary_table(d);
  ASSERT_NE(table.find("4.3205"), std::string::npos) << table;
  ASSERT_NE(table.find("4.3199"), std::string::npos) << table;
  ASSERT_NE(table.find("−0.0006"), std::string::npos) << table;
  // Interpolating dense-continuation at 9.98e11 would give 4.5 + 0.996·(4.3205 − 4.5) = 4.3212 instead.
  EXPECT_EQ(finding_sentence(d),
            "After training compute equal to 100 % of the dense pretraining cost, upcycle-top1 has the lowest mean "
            "validation loss (4.3199), 0.0006 below dense-continuation (4.3205).");
}

TEST(ReportFinding, RunsInProgressAreInterpolatedAndSaySo) {
  ReportData d = two_finished_runs();
  // dense-continuation stopped at step 5 (5e11 FLOPs); upcycle-top1 finished. Compared at 5e11:
  // upcycle-top1 interpolated 4.4 + (5e11 − 4.99e11)/(9.98e11 − 4.99e11)·(4.3199 − 4.4) = 4.39984 → 4.3998.
  Variant& dense = d.variants[0];
  dense.status = "running";
  dense.steps_done = 5;
  dense.mean_loss.pop_back();
  EXPECT_EQ(finding_sentence(d),
            "After training compute equal to 50 % of the dense pretraining cost (values interpolated at that compute "
            "between evaluations: 1 variant still training), upcycle-top1 has the lowest mean validation loss (4.3998), "
            "0.1002 below dense-continuation (4.5000).");
  // A study record that still says "running" but whose run reached its planned steps counts as finished.
  ReportData done = two_finished_runs();
  done.variants[1].status = "running";
  EXPECT_EQ(finding_sentence(done), finding_sentence(two_finished_runs()));
}

TEST(ReportFinding, UnequalBudgetsAreComparedAtTheCommonCompute) {
  ReportData d = two_finished_runs();
  d.variants[0].budget_flops = 2e12;  // say dense-continuation had twice the budget: 5e11 → 9.98e11
  d.variants[0].mean_loss[2] = {20, 2e12, 200, 4.0, 2e3};
  // At 9.98e11 (the smaller final FLOPs): dense-continuation 4.5 + (4.98e11 / 1.5e12)·(4.0 − 4.5) = 4.334,
  // upcycle-top1 its final 4.3199, ahead by 0.0141.
  EXPECT_EQ(finding_sentence(d),
            "After training compute equal to 100 % of the dense pretraining cost (values interpolated at that compute "
            "between evaluations: the budgets differ), upcycle-top1 has the lowest mean validation loss (4.3199), "
            "0.0141 below dense-continuation (4.3340).");
}

}  // namespace
}  // namespace upcycle::report
