// The report's learning-rate sweeps (report/lr_sweep.h) and per-token view (report/token_view.h) on
// hand-made runs whose losses are written here: the best lr at the equal-compute point (tie → the
// smaller lr; unfinished runs compared where all of them are), the folding of a sweep into one
// compared variant, the sweep's table and plot, and the per-token / per-FLOP differences and sentences.
#include <gtest/gtest.h>

#include "report/html_report.h"
#include "report/lr_sweep.h"
#include "report/summary_table.h"
#include "report/token_view.h"

namespace upcycle::report {
namespace {

// A run evaluated at steps 0, 5, 10, … with `flops_per_step` FLOPs and 100 tokens per step.
Variant run(const std::string& name, const std::vector<double>& losses, double flops_per_step = 1e11,
            const std::string& kind = "dense") {
  Variant v;
  v.name = name;
  v.kind = kind;
  v.started = true;
  v.status = "done";
  v.train_flops_per_token = flops_per_step / 100;
  for (size_t i = 0; i < losses.size(); ++i) {
    const int64_t step = int64_t(i) * 5;
    v.mean_loss.push_back({step, double(step) * flops_per_step, double(step), losses[i], double(step) * 100});
  }
  if (!v.mean_loss.empty()) v.steps_done = v.mean_loss.back().step;
  v.started = !v.mean_loss.empty();
  return v;
}

Variant swept(const std::string& sweep, double lr, const std::vector<double>& losses) {
  Variant v = run(sweep + "/lr-" + format_number("%g", lr), losses);
  v.sweep = sweep;
  v.lr = lr;
  return v;
}

// Every line of the terminal summary fits a 100-column terminal (code points; no wide characters).
void expect_fits_100_columns(const std::string& text) {
  size_t start = 0;
  for (size_t nl = text.find('\n'); nl != std::string::npos; start = nl + 1, nl = text.find('\n', start)) {
    size_t columns = 0;
    for (size_t i = start; i < nl; ++i) columns += (static_cast<unsigned char>(text[i]) & 0xC0) != 0x80;
    EXPECT_LE(columns, 100u) << text.substr(start, nl - start);
  }
}

TEST(ReportLrSweep, ChoosesTheLowestFinalLossAndBreaksTiesToTheSmallerLr) {
  LrSweep s{"up", {swept("up", 1e-3, {5, 4, 3.2}), swept("up", 2e-3, {5, 3.9, 3.1}), swept("up", 4e-3, {5, 3.8, 3.4})}};
  choose_learning_rate(s);
  EXPECT_DOUBLE_EQ(s.compare_flops, 1e12);  // all finished: the final evaluation
  ASSERT_TRUE(s.best);
  EXPECT_EQ(*s.best, 1u);
  EXPECT_DOUBLE_EQ(*s.loss[2], 3.4);

  LrSweep tie{"up", {swept("up", 1e-3, {5, 4, 3.1}), swept("up", 2e-3, {5, 3.9, 3.1})}};
  choose_learning_rate(tie);
  EXPECT_EQ(*tie.best, 0u) << "equal losses: the smaller learning rate";
}

TEST(ReportLrSweep, ComparesUnfinishedRunsWhereAllHaveBeen) {
  // The 4e-3 run has only reached step 5 (5e11 FLOPs): there 1e-3 is at 4.0 and 4e-3 at 3.8, although
  // 1e-3 goes on to 3.0 at step 10.
  LrSweep s{"up", {swept("up", 1e-3, {5, 4.0, 3.0}), swept("up", 4e-3, {5, 3.8})}};
  choose_learning_rate(s);
  EXPECT_DOUBLE_EQ(s.compare_flops, 5e11);
  EXPECT_EQ(*s.best, 1u);
  LrSweep none{"up", {swept("up", 1e-3, {})}};  // not evaluated yet
  choose_learning_rate(none);
  EXPECT_FALSE(none.best);
  EXPECT_EQ(none.compare_flops, 0);
}

ReportData sweep_study() {
  ReportData d;
  d.name = "s";
  d.x_axis = XAxis::kExtraComputePercent;
  d.dense_sunk_flops = 1e12;
  d.domains = {};
  // Listed as study.json lists them: spec order, the sweep's runs in the list's order (not by lr).
  d.variants = {swept("dense-continuation", 2e-3, {5, 4, 3.5}), swept("dense-continuation", 1e-3, {5, 4, 3.6}),
                run("other", {5, 4, 3.55})};
  return d;
}

TEST(ReportLrSweep, FoldsEachSweepIntoItsChosenRun) {
  ReportData d = sweep_study();
  fold_lr_sweeps(d);
  ASSERT_EQ(d.variants.size(), 2u);
  EXPECT_EQ(d.variants[0].name, "dense-continuation");  // the baseline keeps its name, found by find()
  EXPECT_DOUBLE_EQ(*d.variants[0].lr, 2e-3);
  EXPECT_EQ(d.variants[1].name, "other");
  ASSERT_EQ(d.sweeps.size(), 1u);
  ASSERT_EQ(d.sweeps[0].runs.size(), 2u);
  EXPECT_DOUBLE_EQ(*d.sweeps[0].runs[0].lr, 1e-3);  // by increasing lr
  EXPECT_EQ(d.sweeps[0].runs[0].name, "dense-continuation/lr-0.001");
  EXPECT_EQ(*d.sweeps[0].best, 1u);
  // The summary compares other against the baseline at its chosen lr: 3.55 − 3.5.
  const std::vector<SummaryRow> rows = summary_rows(d);
  EXPECT_NEAR(*rows[1].delta, 0.05, 1e-12);

  const std::string table = render_summary_table(d);
  EXPECT_NE(table.find("Learning-rate sweeps"), std::string::npos) << table;
  EXPECT_NE(table.find("dense-continuation  0.002  done    3.5000  chosen"), std::string::npos) << table;
  EXPECT_NE(table.find("dense-continuation  0.001  done    3.6000  +0.1000"), std::string::npos) << table;
  EXPECT_NE(table.find("chosen = the lowest mean; equal means go to the smaller lr"), std::string::npos) << table;
  expect_fits_100_columns(table);

  const std::string page = render_html_report(d, {"t", "now"});
  EXPECT_NE(page.find("id=\"plot-lr-sweep\""), std::string::npos);
  EXPECT_NE(page.find("id=\"table-lr-sweep\""), std::string::npos);
  EXPECT_NE(page.find("at lr 0.002, the best of its learning-rate sweep"), std::string::npos);
  EXPECT_NE(page.find("Equal losses go to the smaller learning rate"), std::string::npos);
  // Both runs of the sweep are listed under their own names in the run details.
  EXPECT_NE(page.find("<td>dense-continuation/lr-0.001</td>"), std::string::npos);
  EXPECT_NE(page.find("<td>dense-continuation/lr-0.002</td>"), std::string::npos);
}

TEST(ReportLrSweep, NoSweepNoSection) {
  ReportData d;
  d.variants = {run("a", {5, 4}), run("b", {5, 3})};
  fold_lr_sweeps(d);
  EXPECT_EQ(d.variants.size(), 2u);
  EXPECT_TRUE(d.sweeps.empty());
  EXPECT_EQ(render_html_report(d, {"t", "now"}).find("plot-lr-sweep"), std::string::npos);
  EXPECT_EQ(render_summary_table(d).find("Learning-rate sweeps"), std::string::npos);
}

TEST(ReportTokenView, SeparatesPerTokenFromPerFlop) {
  ReportData d;
  d.x_axis = XAxis::kExtraComputePercent;
  d.dense_sunk_flops = 1e12;
  // Baseline: 1e11 FLOPs per step (1e9 per token), 10 steps → 1000 tokens, loss 5 → 4 → 3.
  // up: 2e11 FLOPs per step (2× per token), 5 steps for the same 1e12 FLOPs → 500 tokens, loss 5 → 3.5:
  // at 500 tokens 3.5 against the baseline's 4.0 (faster per token), at 1e12 FLOPs 3.5 against 3.0.
  d.variants = {run("dense-continuation", {5, 4, 3}), run("up", {5, 3.5}, 2e11, "moe"), run("depth", {5, 4.5}, 2e11)};
  const std::vector<TokenViewRow> rows = token_view_rows(d);
  ASSERT_EQ(rows.size(), 1u) << "MoE variants only";
  const TokenViewRow& r = rows[0];
  EXPECT_EQ(r.variant, "up");
  EXPECT_DOUBLE_EQ(r.cost_ratio, 2.0);
  EXPECT_DOUBLE_EQ(*r.tokens, 500);
  EXPECT_DOUBLE_EQ(*r.per_token_delta, 3.5 - 4.0);
  EXPECT_DOUBLE_EQ(*r.flops, 1e12);
  EXPECT_DOUBLE_EQ(*r.per_flop_delta, 3.5 - 3.0);
  EXPECT_EQ(token_view_sentence(r),
            "up learns faster per token (−0.5000 at 500 tokens) but loses per FLOP (+0.5000 at 1e12 FLOPs): each "
            "token costs 2.00× the FLOPs of a dense-continuation token.");
  // Interpolated: up at 4e11 FLOPs per step reaches 2e12 FLOPs at step 5 (3.9), past the baseline's
  // 1e12, so per FLOP it is read at 1e12 between its steps 0 and 5: 5 + ½ · (3.9 − 5) = 4.45.
  ReportData costly = d;
  costly.variants = {run("dense-continuation", {5, 4, 3}), run("up", {5, 3.9}, 4e11, "moe")};
  const TokenViewRow c = token_view_rows(costly)[0];
  EXPECT_DOUBLE_EQ(*c.tokens, 500);
  EXPECT_NEAR(*c.per_token_delta, 3.9 - 4.0, 1e-12);
  EXPECT_DOUBLE_EQ(*c.flops, 1e12);
  EXPECT_NEAR(*c.per_flop_delta, 4.45 - 3.0, 1e-12);
  // Both finished the same budget (study.json budget_flops): their final evaluations, the summary's Δ.
  for (Variant& v : costly.variants) v.budget_flops = 1e12;
  const TokenViewRow f = token_view_rows(costly)[0];
  EXPECT_DOUBLE_EQ(*f.flops, 1e12);
  EXPECT_NEAR(*f.per_flop_delta, 3.9 - 3.0, 1e-12);
  EXPECT_NEAR(*f.per_flop_delta, *summary_rows(costly)[1].delta, 1e-12);

  const std::string table = render_summary_table(d);
  EXPECT_NE(table.find("Per token and per FLOP, against dense-continuation:\n  up learns faster per token"), std::string::npos)
      << table;
  expect_fits_100_columns(table);  // the sentence is wrapped
  EXPECT_NE(table.find("\n    "), std::string::npos) << table;
  const std::string page = render_html_report(d, {"t", "now"});
  EXPECT_NE(page.find("id=\"table-token-view\""), std::string::npos);
  EXPECT_NE(page.find("<span id=\"token-view-finding\">up learns faster per token"), std::string::npos);
}

TEST(ReportTokenView, AgreementAndNoBaseline) {
  ReportData d;
  d.variants = {run("dense-continuation", {5, 4, 3}), run("up", {5, 2.5}, 2e11, "moe")};
  EXPECT_EQ(token_view_sentence(token_view_rows(d)[0]).rfind("up learns faster per token (−1.5000 at 500 tokens) and wins per "
                                                             "FLOP (−0.5000 at 1e12 FLOPs)", 0),
            0u);
  d.variants[0].name = "dense";
  EXPECT_TRUE(token_view_rows(d).empty());
  EXPECT_EQ(token_view_text(d), "");
}

}  // namespace
}  // namespace upcycle::report
