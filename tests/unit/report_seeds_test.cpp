// The report of a study trained with seeds (report/seed_runs.h, summary_table.h, finding.h) on the
// hand-made study of support/report_fixture.h (write_seeded_report_fixture), whose per-seed final
// losses are listed there: means over seeds, min–max spreads, Δ paired by seed, the verdict of the
// finding, the spread table, and the page's faint seed lines, seed rows and seed commands.
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "report/finding.h"
#include "report/html_report.h"
#include "report/run_data.h"
#include "report/seed_runs.h"
#include "report/summary_table.h"
#include "support/report_fixture.h"
#include "support/test_support.h"

namespace upcycle::report {
namespace {

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

TEST(ReportSeeds, SpreadAndPairedDifferences) {
  const std::map<int64_t, double> a{{1, 3.3}, {2, 3.6}, {3, 3.5}}, b{{1, 3.5}, {2, 3.7}, {4, 9.0}};
  const std::map<int64_t, double> d = paired_differences(a, b);  // seeds in both only: 1 and 2
  ASSERT_EQ(d.size(), 2u);
  EXPECT_NEAR(d.at(1), -0.2, 1e-12);
  EXPECT_NEAR(d.at(2), -0.1, 1e-12);
  const Spread s = *spread(a);
  EXPECT_EQ(s.n, 3u);
  EXPECT_NEAR(s.mean, 3.4666666666666667, 1e-12);
  EXPECT_DOUBLE_EQ(s.min, 3.3);
  EXPECT_DOUBLE_EQ(s.max, 3.6);
  EXPECT_FALSE(spread({}));
  EXPECT_EQ(format_loss_range(s), "3.3000–3.6000");
  EXPECT_EQ(format_delta_range({-0.1, -0.2, 0.1, 3}), "−0.2000 … +0.1000");
  EXPECT_EQ(format_delta_range({-0.1, -0.1, -0.1, 1}), "−0.1000");
  EXPECT_EQ(paired_verdict({0, -0.2, -0.1, 3}), "lower for every seed");
  EXPECT_EQ(paired_verdict({0, 0.1, 0.2, 2}), "higher for every seed");
  EXPECT_EQ(paired_verdict({0, -0.2, 0.1, 3}), "sign varies");
  EXPECT_EQ(paired_verdict({0, -0.2, 0.0, 2}), "sign varies");  // a tie is no advantage
  EXPECT_EQ(paired_verdict({-0.2, -0.2, -0.2, 1}), "one seed");
}

TEST(ReportSeeds, MeansSpreadsAndPairedDeltas) {
  test::ScratchDir dir;
  test::write_seeded_report_fixture(dir.path());
  const ReportData d = load_report_data({dir.path()});
  ASSERT_EQ(d.variants.size(), 3u);
  const Variant& dense = d.variants[0];
  ASSERT_TRUE(dense.seeded());
  ASSERT_EQ(dense.seed_runs.size(), 3u);
  EXPECT_EQ(dense.seed_runs[1].name, "dense-continuation · seed 2");
  EXPECT_EQ(dense.seed_runs[1].run_dir, dir.path() / "runs/dense-continuation/seed-2");
  EXPECT_EQ(dense.seed_runs[1].commands, std::vector<std::string>{"upcycle train --out runs/dense-continuation/seed-2 --seed 2"});
  EXPECT_EQ(dense.status, "done");
  EXPECT_TRUE(dense.finished());
  // Mean curves: steps 0, 5, 10; at step 5 every seed is at its final + 0.5: (3.5 + 3.7 + 3.4) / 3 + 0.5.
  ASSERT_EQ(dense.mean_loss.size(), 3u);
  EXPECT_NEAR(dense.mean_loss[0].loss, 4.5, 1e-12);
  EXPECT_NEAR(dense.mean_loss[1].loss, 10.6 / 3 + 0.5, 1e-12);
  EXPECT_NEAR(dense.mean_loss[2].x, 100.0, 1e-9);
  EXPECT_NEAR(dense.domain_loss.at("prose").back().loss, (3.0 + 3.2 + 2.9) / 3, 1e-12);
  EXPECT_EQ(dense.steps_done, 10);
  // Analysis summaries averaged over seeds: domain_specialization 0.1·seed → 0.2, similarity 1 − 0.2.
  const Variant& up = d.variants[1];
  ASSERT_EQ(up.analysis.size(), 1u);
  EXPECT_NEAR(*up.analysis[0].domain_specialization, 0.2, 1e-12);
  EXPECT_NEAR(*up.analysis[0].expert_similarity_mean, 0.8, 1e-12);
  EXPECT_EQ(up.final_load.size(), 2u);  // the first seed's loads

  const std::vector<SummaryRow> rows = summary_rows(d);
  EXPECT_EQ(rows[0].seeds, 3u);
  EXPECT_EQ(rows[0].seeds_listed, 3u);
  EXPECT_NEAR(*rows[0].mean, 10.6 / 3, 1e-12);
  EXPECT_NEAR(rows[0].mean_spread->min, 3.4, 1e-12);
  EXPECT_NEAR(rows[0].mean_spread->max, 3.7, 1e-12);
  EXPECT_NEAR(*rows[0].delta, 0.0, 1e-12);
  // upcycle: 3.3, 3.6, 3.5 against 3.5, 3.7, 3.4 → Δ −0.2, −0.1, +0.1.
  EXPECT_NEAR(*rows[1].mean, 10.4 / 3, 1e-12);
  EXPECT_NEAR(*rows[1].delta, -0.2 / 3, 1e-12);
  EXPECT_NEAR(rows[1].delta_spread->min, -0.2, 1e-12);
  EXPECT_NEAR(rows[1].delta_spread->max, 0.1, 1e-12);
  // upcycle-top1: 3.4, 3.6, 3.35 → Δ −0.1, −0.1, −0.05; prose 2.9, 3.1, 2.85 against 3.0, 3.2, 2.9.
  EXPECT_NEAR(*rows[2].mean, 3.45, 1e-12);
  EXPECT_NEAR(*rows[2].delta, -0.25 / 3, 1e-12);
  EXPECT_NEAR(rows[2].delta_spread->min, -0.1, 1e-12);
  EXPECT_NEAR(rows[2].delta_spread->max, -0.05, 1e-12);
  EXPECT_NEAR(*rows[2].domain[0], 2.95, 1e-12);
  EXPECT_NEAR(rows[2].domain_spread[0]->min, 2.85, 1e-12);
  EXPECT_NEAR(*rows[2].domain_delta[0], -0.25 / 3, 1e-12);
  EXPECT_NEAR(rows[2].domain_delta_spread[0]->max, -0.05, 1e-12);

  const std::string table = render_summary_table(d);
  EXPECT_NE(table.find("upcycle-top1        done       10  100 %  +100 %  3.4500  2.9500  3.9500     −0.0833\n"), std::string::npos)
      << table;
  EXPECT_NE(table.find("dense-continuation      3  3.4000–3.7000         (baseline)\n"), std::string::npos) << table;
  EXPECT_NE(table.find("upcycle                 3  3.3000–3.6000  −0.2000 … +0.1000  sign varies\n"), std::string::npos) << table;
  EXPECT_NE(table.find("upcycle-top1            3  3.3500–3.6000  −0.1000 … −0.0500  lower for every seed\n"), std::string::npos)
      << table;
  size_t line_start = 0;  // still fits a 100-column terminal
  for (size_t nl = table.find('\n'); nl != std::string::npos; line_start = nl + 1, nl = table.find('\n', line_start)) {
    size_t columns = 0;
    for (size_t i = line_start; i < nl; ++i) columns += (static_cast<unsigned char>(table[i]) & 0xC0) != 0x80;
    EXPECT_LE(columns, 100u) << table.substr(line_start, nl - line_start);
  }
}

TEST(ReportSeeds, FindingSaysWhetherTheAdvantageHoldsForEverySeed) {
  test::ScratchDir dir;
  test::write_seeded_report_fixture(dir.path());
  ReportData d = load_report_data({dir.path()});
  EXPECT_EQ(finding_sentence(d),
            "After training compute equal to 100 % of the dense pretraining cost, upcycle-top1 has the lowest mean "
            "validation loss (3.4500; mean of 3 seeds, 3.3500–3.6000), 0.0833 below dense-continuation (3.5333; mean of 3 "
            "seeds, 3.4000–3.7000); paired by seed (same data order) the difference is −0.1000 to −0.0500, lower for every "
            "seed: the advantage holds.");
  d.variants.pop_back();  // without upcycle-top1, upcycle leads on average but not for seed 3
  EXPECT_EQ(finding_sentence(d),
            "After training compute equal to 100 % of the dense pretraining cost, upcycle has the lowest mean validation "
            "loss (3.4667; mean of 3 seeds, 3.3000–3.6000), 0.0667 below dense-continuation (3.5333; mean of 3 seeds, "
            "3.4000–3.7000); paired by seed (same data order) the difference is −0.2000 to +0.1000, its sign varies "
            "between seeds: the advantage is within the noise.");
}

TEST(ReportSeeds, ASeedStillToComeIsCountedAndTheFindingSaysSo) {
  test::ScratchDir dir;
  test::write_seeded_report_fixture(dir.path(), /*pending_seed=*/true);
  const ReportData d = load_report_data({dir.path()});
  const Variant& top1 = d.variants[2];
  EXPECT_EQ(top1.status, "running");
  EXPECT_FALSE(top1.finished());
  EXPECT_FALSE(top1.seed_runs[2].started);
  const std::vector<SummaryRow> rows = summary_rows(d);
  EXPECT_EQ(rows[2].seeds, 2u);
  EXPECT_EQ(rows[2].seeds_listed, 3u);
  EXPECT_NEAR(*rows[2].mean, 3.5, 1e-12);           // (3.4 + 3.6) / 2
  EXPECT_NEAR(*rows[2].delta, -0.1, 1e-12);         // paired over seeds 1 and 2 only
  EXPECT_NE(render_summary_table(d).find("upcycle-top1          2/3  3.4000–3.6000  −0.1000"), std::string::npos)
      << render_summary_table(d);
  // Still training: compared on the curves at the common compute (here every curve's last point).
  EXPECT_EQ(finding_sentence(d),
            "After training compute equal to 100 % of the dense pretraining cost (values interpolated at that compute "
            "between evaluations: 1 variant still training), upcycle has the lowest mean validation loss (3.4667; mean of "
            "3 seeds, 3.3000–3.6000), 0.0667 below dense-continuation (3.5333; mean of 3 seeds, 3.4000–3.7000); paired by "
            "seed (same data order) the difference is −0.2000 to +0.1000, its sign varies between seeds: the advantage is "
            "within the noise.");
}

TEST(ReportSeeds, PageDrawsSeedsFaintlyAndListsEachSeedsRun) {
  test::ScratchDir dir;
  test::write_seeded_report_fixture(dir.path());
  const std::string page = render_html_report(load_report_data({dir.path()}), {"", "today"});
  const size_t loss = page.find("<svg id=\"plot-loss-vs-compute\"");
  ASSERT_NE(loss, std::string::npos);
  const std::string chart = page.substr(loss, page.find("</svg>", loss) - loss);
  EXPECT_EQ(count(chart, "<polyline class=\"series seed\""), 9u);  // 3 variants × 3 seeds
  EXPECT_EQ(count(chart, "<polyline class=\"series\""), 3u);       // their means
  EXPECT_EQ(chart.find("legend-text\" text-anchor=\"start\">upcycle · seed"), std::string::npos) << "seeds stay out of the legend";
  EXPECT_NE(page.find("<th>variant</th><th>seeds</th><th>compute spent</th>"), std::string::npos);
  EXPECT_NE(page.find("<td class=\"best\">3.4500<small class=\"spread\">3.3500–3.6000</small><small>−0.0833 (−0.1000 … "
                      "−0.0500)</small></td>"),
            std::string::npos);
  EXPECT_NE(page.find("<tr><td>upcycle · seed 2</td><td>moe</td>"), std::string::npos);
  EXPECT_NE(page.find("<details><summary>upcycle · seed 2</summary><pre>upcycle train \\\n    --out runs/upcycle/seed-2 "
                      "\\\n    --seed 2</pre></details>"),
            std::string::npos);
  EXPECT_NE(page.find("<title>upcycle · seed 1</title>"), std::string::npos);  // the load heatmap of the first seed
}

TEST(ReportSeeds, MalformedSeedRunsNameTheStudyFile) {
  test::ScratchDir dir;
  test::write_seeded_report_fixture(dir.path());
  const auto file = dir.path() / "study.json";
  Json study = Json::parse(test::read_bytes(file));
  study["variants"][1]["runs"][0].erase("run");
  std::ofstream(file) << study.dump();
  try {
    load_report_data({dir.path()});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), file.string());
    EXPECT_NE(std::string(e.what()).find("study variant 'upcycle' run: \"run\" is missing"), std::string::npos) << e.what();
  }
  study["variants"][1]["runs"] = Json::array();
  std::ofstream(file) << study.dump();
  EXPECT_THROW(load_report_data({dir.path()}), Error);
}

}  // namespace
}  // namespace upcycle::report
