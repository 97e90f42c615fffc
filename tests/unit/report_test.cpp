// The report library on hand-computed cases: axis ticks and coordinate mapping, the study x axis
// (docs/study.md), XML escaping of hostile names, and the summary numbers, final loads, analysis
// points and finding sentence of the hand-made study in support/report_fixture.h. Also the
// user errors for malformed inputs (one line naming the file).
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "report/html_report.h"
#include "report/run_data.h"
#include "report/finding.h"
#include "report/summary_table.h"
#include "report/svg_plot.h"
#include "support/report_fixture.h"
#include "support/test_support.h"

namespace upcycle::report {
namespace {

TEST(ReportTicks, RoundSteps) {
  Ticks t = nice_ticks(0, 10, 5);  // raw step 2 → 2
  EXPECT_DOUBLE_EQ(t.step, 2);
  EXPECT_EQ(t.values, (std::vector<double>{0, 2, 4, 6, 8, 10}));

  t = nice_ticks(-100, 35, 8);  // raw 16.9 → 20; widened to [-100, 40]
  EXPECT_DOUBLE_EQ(t.step, 20);
  EXPECT_DOUBLE_EQ(t.lo, -100);
  EXPECT_DOUBLE_EQ(t.hi, 40);
  EXPECT_EQ(t.values.size(), 8u);

  t = nice_ticks(2.93, 3.41, 5);  // raw 0.096 → 0.1; [2.9, 3.5], 7 ticks, no float drift into an 8th
  EXPECT_NEAR(t.step, 0.1, 1e-12);
  EXPECT_NEAR(t.lo, 2.9, 1e-12);
  EXPECT_NEAR(t.hi, 3.5, 1e-12);
  ASSERT_EQ(t.values.size(), 7u);
  EXPECT_EQ(format_tick(t.values[3], t.step), "3.2");

  t = nice_ticks(-100, 100.14, 5);  // a run a hair over its budget adds no empty step: [-100, 100] by 50
  EXPECT_DOUBLE_EQ(t.step, 50);
  EXPECT_DOUBLE_EQ(t.hi, 100);
  EXPECT_EQ(t.values.size(), 5u);

  t = nice_ticks(5, 5, 5);  // empty range widened by 10 %: [4.5, 5.5], step 0.2 → [4.4, 5.6]
  EXPECT_NEAR(t.lo, 4.4, 1e-12);
  EXPECT_NEAR(t.hi, 5.6, 1e-12);
}

TEST(ReportTicks, Labels) {
  EXPECT_EQ(format_tick(40, 20), "40");
  EXPECT_EQ(format_tick(-0.00001, 0.1), "0.0");
  EXPECT_EQ(format_tick(0.25, 0.05), "0.25");
}

TEST(ReportScale, MapsLinearly) {
  LinearScale x{0, 10, 66, 566};
  EXPECT_DOUBLE_EQ(x(0), 66);
  EXPECT_DOUBLE_EQ(x(2.5), 191);
  EXPECT_DOUBLE_EQ(x(10), 566);
  LinearScale y{2, 4, 354, 34};  // SVG y grows downwards
  EXPECT_DOUBLE_EQ(y(3), 194);
  EXPECT_DOUBLE_EQ(y(4), 34);
}

TEST(ReportAxis, ExtraComputePercent) {
  EXPECT_DOUBLE_EQ(extra_compute_percent(0, 0, 1e15), -100);     // MoE from scratch starts at −100 %
  EXPECT_DOUBLE_EQ(extra_compute_percent(1e15, 0, 1e15), 0);     // continuing the dense model starts at 0
  EXPECT_DOUBLE_EQ(extra_compute_percent(1e15, 5e14, 1e15), 50);
  EXPECT_DOUBLE_EQ(extra_compute_percent(0, 1e15, 1e15), 0);
}

TEST(ReportEscape, HostileNames) {
  EXPECT_EQ(xml_escape("a<b&\"c\""), "a&lt;b&amp;&quot;c&quot;");
  EXPECT_EQ(xml_escape("it's"), "it&#39;s");
  LineChart c{"plot-x", "t", "x", "y", {{"a<b&\"c\"", {{0, 1}, {1, 2}}, 0}}};
  const std::string svg = render_line_chart(c);
  EXPECT_NE(svg.find("a&lt;b&amp;&quot;c&quot;"), std::string::npos);
  EXPECT_EQ(svg.find("a<b"), std::string::npos);
  EXPECT_EQ(svg_id("plot-load", "a<b&\"c\""), "plot-load-a-b--c-");
}

TEST(ReportChart, OnePolylinePerSeries) {
  LineChart c{"plot-x", "", "x", "y", {{"a", {{0, 1}, {1, 2}, {2, 1.5}}, 0}, {"b", {}, 1}}};
  const std::string svg = render_line_chart(c);
  size_t lines = 0;
  for (size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1)) ++lines;
  EXPECT_EQ(lines, 1u);  // the empty series is only in the legend
  EXPECT_NE(svg.find("b (no data)"), std::string::npos);
  Heatmap m{"plot-h", "", "expert", "", {"l1", "l2"}, {"0", "1", "2"}, {{1, 2, 0.5}, {1, 1, 1}}};
  const std::string hm = render_heatmap(m);
  size_t cells = 0;
  for (size_t p = hm.find("class=\"cell\""); p != std::string::npos; p = hm.find("class=\"cell\"", p + 1)) ++cells;
  EXPECT_EQ(cells, 6u);
}

TEST(ReportData, SummaryOfFixtureStudy) {
  test::ScratchDir dir;
  test::write_report_fixture(dir.path());
  const ReportData d = load_report_data({dir.path()});
  EXPECT_EQ(d.name, "fixture <study>");
  EXPECT_EQ(d.x_axis, XAxis::kExtraComputePercent);
  ASSERT_EQ(d.variants.size(), 4u);
  const std::vector<SummaryRow> rows = summary_rows(d);
  // dense-continuation: (3.0 + 4.0) / 2; upcycle: (2.8 + 3.8) / 2, Δ −0.2; moe-scratch (4.5 + 5.5) / 2.
  EXPECT_NEAR(*rows[0].mean, 3.5, 1e-12);
  EXPECT_NEAR(*rows[0].delta, 0.0, 1e-12);
  EXPECT_NEAR(*rows[1].mean, 3.3, 1e-12);
  EXPECT_NEAR(*rows[1].delta, -0.2, 1e-12);
  EXPECT_NEAR(*rows[1].domain[0], 2.8, 1e-12);
  EXPECT_NEAR(*rows[1].domain[1], 3.8, 1e-12);
  EXPECT_NEAR(*rows[2].mean, 5.0, 1e-12);
  // Compute spent = 100 · run FLOPs / dense sunk; x position = 100 · (sunk + run − dense sunk) / dense sunk.
  EXPECT_NEAR(*rows[2].spent, 100.0, 1e-9);  // scratch: 100 · 1e12 / 1e12 …
  EXPECT_NEAR(*rows[2].x, 0.0, 1e-9);        // … but at x = 100 · (0 + 1e12 − 1e12) / 1e12
  EXPECT_NEAR(*rows[1].spent, 100.0, 1e-9);
  EXPECT_NEAR(*rows[1].x, 100.0, 1e-9);      // 100 · (1e12 + 1e12 − 1e12) / 1e12
  EXPECT_FALSE(rows[3].spent);
  EXPECT_EQ(rows[3].status, "pending");    // no run directory yet
  EXPECT_FALSE(rows[3].mean);

  const Variant& up = d.variants[1];
  ASSERT_EQ(up.mean_loss.size(), 3u);      // step-0 evaluation included; the truncated record ignored
  EXPECT_EQ(up.mean_loss[0].step, 0);
  EXPECT_NEAR(up.mean_loss[0].x, 0.0, 1e-9);
  EXPECT_NEAR(d.variants[2].mean_loss[0].x, -100.0, 1e-9);
  EXPECT_EQ(up.steps_done, 10);
  // Final load: eval_tokens-weighted mean of prose (300) and code (100) loads.
  ASSERT_EQ(up.final_load.size(), 2u);
  EXPECT_EQ(up.final_load[1].layer, 3);
  EXPECT_NEAR(up.final_load[0].load[0], 0.325, 1e-12);
  EXPECT_NEAR(up.final_load[0].load[3], 0.175, 1e-12);
  // Analysis: step 0 (flops null → 0) and step 10; routing from the middle layer of the newest file.
  ASSERT_EQ(up.analysis.size(), 2u);
  EXPECT_NEAR(up.analysis[0].x, 0.0, 1e-9);
  EXPECT_NEAR(*up.analysis[1].domain_specialization, 0.2, 1e-12);
  ASSERT_TRUE(up.routing);
  EXPECT_EQ(up.routing->layer, 3);
  EXPECT_EQ(up.routing->step, 10);
  EXPECT_EQ(up.routing->domains, (std::vector<std::string>{"prose", "code"}));

  // The dense pretraining run: x = 100 · (f − 1e12) / 1e12 at f = 0, 5e11, 1e12; mean (9+9)/2, (6+7)/2, (4+5)/2.
  ASSERT_TRUE(d.dense_pretrain);
  EXPECT_EQ(d.dense_pretrain->name, kDensePretrainName);
  ASSERT_EQ(d.dense_pretrain->mean_loss.size(), 3u);
  EXPECT_NEAR(d.dense_pretrain->mean_loss[0].x, -100.0, 1e-9);
  EXPECT_NEAR(d.dense_pretrain->mean_loss[1].x, -50.0, 1e-9);
  EXPECT_NEAR(d.dense_pretrain->mean_loss[2].x, 0.0, 1e-9);
  EXPECT_NEAR(d.dense_pretrain->mean_loss[1].loss, 6.5, 1e-12);
  EXPECT_NEAR(*d.dense_pretrain->final_mean_loss(), 4.5, 1e-12);
  EXPECT_EQ(d.dense_pretrain->status, "done");
  EXPECT_EQ(d.dense_commands.size(), 2u);
  EXPECT_EQ(d.dense_pretrain->commands, d.dense_commands);

  const std::string first =
      "After training compute equal to 100 % of the dense pretraining cost, upcycle has the lowest mean "
      "validation loss (3.3000), 0.2000 below dense-continuation (3.5000) (1 variant not started yet).";
  // moe-scratch (sunk 0) against the dense model's final evaluation: (4.5 + 5.5) / 2 = 5.0 vs (4 + 5) / 2 = 4.5.
  EXPECT_EQ(finding_sentence(d), first +
                                     " moe-scratch, after 100 % of the dense pretraining compute, reaches 5.0000 against the "
                                     "dense model's 4.5000: it has not caught up (Komatsuzaki et al. report ≈120 % needed).");
  ReportData caught = d;
  caught.dense_pretrain->mean_loss.back().loss = 5.25;
  EXPECT_NE(finding_sentence(caught).find("reaches 5.0000 against the dense model's 5.2500: it has caught up ("), std::string::npos)
      << finding_sentence(caught);
  ReportData no_dense = d;
  no_dense.dense_pretrain.reset();
  EXPECT_EQ(finding_sentence(no_dense), first);

  const std::string table = render_summary_table(d);
  EXPECT_NE(table.find("−0.2000"), std::string::npos);
  EXPECT_NE(table.find("pending"), std::string::npos);
  EXPECT_NE(table.find("spent"), std::string::npos);
  EXPECT_NE(table.find("x pos"), std::string::npos);
  // moe-scratch's row: spent 100 %, x +0 %, mean 5.0000.
  EXPECT_NE(table.find("100 %    +0 %  5.0000"), std::string::npos) << table;
  // Fits an 100-column terminal (code points; the table has no wide characters).
  size_t line_start = 0;
  for (size_t nl = table.find('\n'); nl != std::string::npos; line_start = nl + 1, nl = table.find('\n', line_start)) {
    size_t columns = 0;
    for (size_t i = line_start; i < nl; ++i) columns += (static_cast<unsigned char>(table[i]) & 0xC0) != 0x80;
    EXPECT_LE(columns, 100u) << table.substr(line_start, nl - line_start);
  }
}

size_t occurrences(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

// The markup of the top-level <svg> with this id (line charts have no nested <svg>).
std::string svg_of(const std::string& page, const std::string& id) {
  const size_t start = page.find("<svg id=\"" + id + "\"");
  if (start == std::string::npos) return {};
  return page.substr(start, page.find("</svg>", start) + 6 - start);
}

TEST(ReportPage, DensePretrainingCompareColumnsAndReproduce) {
  test::ScratchDir dir;
  test::write_report_fixture(dir.path());
  const ReportData d = load_report_data({dir.path()});
  const std::string page = render_html_report(d, {"", "today"});
  // Grey reference line + three variants with evaluations, in the loss plot and each domain plot.
  const std::string loss = svg_of(page, "plot-loss-vs-compute");
  EXPECT_EQ(occurrences(loss, "<polyline"), 4u);
  EXPECT_NE(loss.find("data-name=\"dense pretraining\"><polyline class=\"series\" fill=\"none\" stroke=\"#8c959f\""),
            std::string::npos);
  for (const std::string domain : {"prose", "code"}) EXPECT_EQ(occurrences(svg_of(page, "plot-domain-" + domain), "<polyline"), 4u);
  // Per token: the three evaluated variants, without the dense pretraining (its tokens are not the runs').
  const std::string per_token = svg_of(page, "plot-loss-vs-tokens");
  EXPECT_EQ(occurrences(per_token, "<polyline"), 3u);
  EXPECT_EQ(per_token.find("dense pretraining"), std::string::npos);
  // Final-loss table: both compute columns.
  const size_t table = page.find("id=\"table-final-loss\"");
  ASSERT_NE(table, std::string::npos);
  const std::string final_loss = page.substr(table, page.find("</table>", table) - table);
  EXPECT_NE(final_loss.find("<th>compute spent</th><th>x position</th>"), std::string::npos);
  EXPECT_NE(final_loss.find("<tr><td>moe-scratch</td><td>100 %</td><td>+0 %</td>"), std::string::npos);
  EXPECT_NE(final_loss.find("<tr><td>upcycle</td><td>100 %</td><td>+100 %</td>"), std::string::npos);
  EXPECT_NE(final_loss.find("<tr><td>upcycle-noise</td><td>—</td><td>—</td>"), std::string::npos);
  // Run details: numbers only, the dense pretraining run first; the commands live in Reproduce.
  const size_t runs = page.find("id=\"table-runs\"");
  ASSERT_NE(runs, std::string::npos);
  const std::string run_table = page.substr(runs, page.find("</table>", runs) - runs);
  EXPECT_EQ(run_table.find("upcycle train"), std::string::npos);
  EXPECT_NE(run_table.find("<tr><td>dense pretraining</td><td>dense</td>"), std::string::npos);
  EXPECT_NE(page.find("<details><summary>dense pretraining</summary><pre>upcycle init \\\n    --arch llama \\\n    --layers 2 "
                      "models/dense-init\n\nupcycle train \\\n    --model models/dense-init"),
            std::string::npos);
  EXPECT_NE(page.find("<details><summary>upcycle</summary><pre>upcycle train \\\n    --model models/upcycle \\\n    --out "
                      "runs/upcycle \\\n    --steps 10</pre></details>"),
            std::string::npos);
  EXPECT_EQ(occurrences(page, "<details>"), 5u);  // dense pretraining + 4 variants (commands known even when pending)
}

TEST(ReportPage, StudyWithoutDensePretrainingRun) {
  test::ScratchDir dir;
  test::write_report_fixture(dir.path());
  Json study = Json::parse(test::read_bytes(dir.path() / "study.json"));
  study["dense"]["pretrain_run"] = "gone";  // a directory that is not there: reported without it
  study["dense"].erase("commands");
  std::ofstream(dir.path() / "study.json") << study.dump();
  ReportData d = load_report_data({dir.path()});
  EXPECT_FALSE(d.dense_pretrain);
  std::string page = render_html_report(d, {"", "today"});
  EXPECT_EQ(occurrences(svg_of(page, "plot-loss-vs-compute"), "<polyline"), 3u);
  EXPECT_EQ(page.find("<summary>dense pretraining</summary>"), std::string::npos);
  EXPECT_EQ(page.find("it has not caught up"), std::string::npos);

  study["dense"]["pretrain_run"] = nullptr;  // the study was given a checkpoint
  std::ofstream(dir.path() / "study.json") << study.dump();
  EXPECT_FALSE(load_report_data({dir.path()}).dense_pretrain);
  study["dense"]["pretrain_run"] = 3;
  std::ofstream(dir.path() / "study.json") << study.dump();
  EXPECT_THROW(load_report_data({dir.path()}), Error);
}

TEST(ReportData, MalformedInputsNameTheFile) {
  test::ScratchDir dir;
  test::write_report_fixture(dir.path());
  const auto metrics = dir.path() / "runs/upcycle/metrics.jsonl";
  std::ofstream(metrics, std::ios::app) << "\n{not json}\n";
  try {
    load_report_data({dir.path()});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), metrics.string());
    EXPECT_NE(std::string(e.what()).find("not a JSON object"), std::string::npos);
  }
  std::ofstream(dir.path() / "study.json") << "{";
  EXPECT_THROW(load_report_data({dir.path()}), Error);
  test::ScratchDir empty;
  try {
    load_report_data({empty.path()});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), (empty.path() / "config.json").string());
  }
}

TEST(ReportData, PlainRunDirsUseFlops) {
  test::ScratchDir dir;
  test::write_report_fixture(dir.path());
  const ReportData d = load_report_data({dir.path() / "runs/upcycle", dir.path() / "runs/dense-continuation"});
  EXPECT_EQ(d.x_axis, XAxis::kFlops);
  ASSERT_EQ(d.variants.size(), 2u);
  EXPECT_EQ(d.variants[0].name, "upcycle");
  EXPECT_EQ(d.variants[0].kind, "moe");
  EXPECT_EQ(d.variants[0].status, "done");
  EXPECT_DOUBLE_EQ(d.variants[0].mean_loss.back().x, 1e12);
  EXPECT_EQ(d.domains, (std::vector<std::string>{"prose", "code"}));  // as logged
  EXPECT_EQ(format_x(d, 1e12), "1e12 FLOPs");
  ReportData percent;
  percent.x_axis = XAxis::kExtraComputePercent;
  EXPECT_EQ(format_x(percent, -0.3), "+0 %");  // what is printed carries the sign, not the unrounded value
  EXPECT_EQ(format_x(percent, -99.6), "−100 %");
  EXPECT_EQ(format_x(percent, 49.5), "+50 %");
  EXPECT_THROW(load_report_data({dir.path(), dir.path() / "runs/upcycle"}), Error);  // a study goes alone
}

}  // namespace
}  // namespace upcycle::report
