// `upcycle report` as a user runs it on a hand-made study directory (support/report_fixture.h), with
// the page rendered by headless Chromium: the DOM Chromium builds must hold every plot id with its
// drawn elements (one polyline per variant with data plus the grey dense pretraining line, layers ×
// experts heatmap cells), the Reproduce blocks must hold each run's commands, and a
// screenshot must be a real picture. Chromium is required (scripts/setup installs it): without it
// these tests fail rather than skip. Also bad input: one-line error, exit 2, no output file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>

#include "support/report_fixture.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

std::string find_chromium() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t start = 0; start <= dirs.size();) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const fs::path candidate = fs::path(dirs.substr(start, end - start)) / "chromium";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  return {};
}

// Runs headless Chromium on `page` with `action` ("--dump-dom" or "--screenshot=…"); returns stdout.
std::string chromium(const fs::path& page, const std::string& action, const test::ScratchDir& scratch) {
  const std::string binary = find_chromium();
  if (binary.empty()) {
    ADD_FAILURE() << "chromium is not installed: run scripts/setup (the report tests render the page in headless Chromium)";
    return {};
  }
  const fs::path profile = scratch / ("chromium-profile-" + std::to_string(std::rand()));
  const fs::path out = scratch / "chromium.out";
  const std::string cmd = "'" + binary + "' --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                          "--disable-background-networking --disable-component-update --disable-sync --user-data-dir='" +
                          profile.string() + "' " + action + " 'file://" + page.string() + "' >'" + out.string() +
                          "' 2>/dev/null";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd;
  return test::read_bytes(out);
}

// The markup of the <svg> with this id, up to its matching </svg> (nested panels included).
std::string svg_by_id(const std::string& dom, const std::string& id) {
  const size_t start = dom.find("<svg id=\"" + id + "\"");
  if (start == std::string::npos) return {};
  int depth = 0;
  for (size_t p = start; p < dom.size();) {
    const size_t open = dom.find("<svg", p + 1), close = dom.find("</svg>", p + 1);
    if (close == std::string::npos) return {};
    if (open != std::string::npos && open < close) {
      ++depth;
      p = open;
    } else {
      if (depth-- == 0) return dom.substr(start, close + 6 - start);
      p = close;
    }
  }
  return {};
}

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

// Polylines with at least two "x,y" points.
size_t drawn_lines(const std::string& svg) {
  static const std::regex line("<polyline[^>]*points=\"(-?[0-9.]+,-?[0-9.]+ )+-?[0-9.]+,-?[0-9.]+\"");
  return size_t(std::distance(std::sregex_iterator(svg.begin(), svg.end(), line), std::sregex_iterator()));
}

TEST(ReportCli, StudyPageRendersInChromium) {
  test::ScratchDir dir;
  test::write_report_fixture(dir / "study");
  const fs::path page = dir / "report.html";
  test::RunResult r = test::run_upcycle({"report", (dir / "study").string(), "--out", page.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("upcycle"), std::string::npos);
  EXPECT_NE(r.out.find("−0.2000"), std::string::npos) << r.out;  // Δ vs dense-continuation in the summary table
  EXPECT_NE(r.out.find("wrote " + page.string()), std::string::npos);
  EXPECT_NE(r.out.find("moe-scratch, after 100 % of the dense pretraining compute, reaches 5.0000 against the dense model's "
                       "4.5000: it has not caught up"),
            std::string::npos)
      << r.out;
  const std::string html = test::read_bytes(page);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // only the SVG namespace, no URL to fetch
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("fixture &lt;study&gt;"), std::string::npos);

  const std::string dom = chromium(page, "--dump-dom", dir);
  ASSERT_FALSE(dom.empty());
  EXPECT_NE(dom.find("upcycle has the lowest mean validation loss (3.3000), 0.2000 below dense-continuation"), std::string::npos);
  // Three variants have evaluations, plus the dense pretraining run; the pending one is in the legend only.
  EXPECT_EQ(drawn_lines(svg_by_id(dom, "plot-loss-vs-compute")), 4u);
  EXPECT_NE(svg_by_id(dom, "plot-loss-vs-compute").find("data-name=\"dense pretraining\""), std::string::npos);
  EXPECT_NE(svg_by_id(dom, "plot-loss-vs-compute").find("class=\"vline\""), std::string::npos);
  EXPECT_EQ(drawn_lines(svg_by_id(dom, "plot-loss-vs-tokens")), 3u);
  for (const std::string domain : {"prose", "code"}) EXPECT_EQ(drawn_lines(svg_by_id(dom, "plot-domain-" + domain)), 4u) << domain;
  for (const std::string v : {"upcycle", "moe-scratch"}) {
    EXPECT_EQ(count(svg_by_id(dom, "plot-load-" + v), "class=\"cell\""), 2u * 4u) << v;     // 2 MoE layers × 4 experts
    EXPECT_EQ(count(svg_by_id(dom, "plot-routing-" + v), "class=\"cell\""), 2u * 4u) << v;  // 2 domains × 4 experts
  }
  EXPECT_TRUE(svg_by_id(dom, "plot-load-dense-continuation").empty());
  EXPECT_TRUE(svg_by_id(dom, "plot-load-upcycle-noise").empty());  // pending: nothing to draw
  // Three panels; upcycle has 2 analysis points, moe-scratch 1 (a marker, no line): one line per panel.
  const std::string spec = svg_by_id(dom, "plot-specialization");
  EXPECT_EQ(count(spec, "<svg"), 4u);
  EXPECT_EQ(drawn_lines(spec), 3u);
  EXPECT_NE(dom.find("id=\"table-final-loss\""), std::string::npos);
  EXPECT_NE(dom.find("id=\"table-runs\""), std::string::npos);
  EXPECT_NE(dom.find("compute spent"), std::string::npos);
  // Reproduce: one collapsible block per run with commands, one flag per line, continued with " \\".
  EXPECT_EQ(count(dom, "<details>"), 5u);
  EXPECT_NE(dom.find("<summary>dense pretraining</summary><pre>upcycle init \\\n    --arch llama"), std::string::npos);
  EXPECT_NE(dom.find("<summary>upcycle</summary><pre>upcycle train \\\n    --model models/upcycle \\\n    --out runs/upcycle "
                     "\\\n    --steps 10</pre>"),
            std::string::npos);

  const fs::path png = dir / "report.png";
  chromium(page, "--screenshot=" + png.string() + " --window-size=1200,3000", dir);
  ASSERT_TRUE(fs::exists(png));
  EXPECT_GT(fs::file_size(png), 60u * 1024) << "the screenshot looks blank";
}

// --figures: every plot of the page as its own SVG file, which Chromium opens alone and draws as on the
// page (same polylines and cells), with the chart styles inside the file.
TEST(ReportCli, FiguresAreStandaloneSvgFiles) {
  test::ScratchDir dir;
  test::write_report_fixture(dir / "study");
  const fs::path page = dir / "report.html", figures = dir / "figures";
  test::RunResult r = test::run_upcycle({"report", (dir / "study").string(), "--out", page.string(), "--figures", figures.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // loss vs compute and vs tokens, 2 domains, 2 × 2 heatmaps, the specialisation group.
  EXPECT_NE(r.out.find("wrote 9 figures to " + figures.string()), std::string::npos) << r.out;
  const std::string html = test::read_bytes(page);
  for (const std::string id : {"plot-loss-vs-compute", "plot-domain-code", "plot-load-upcycle", "plot-specialization"}) {
    SCOPED_TRACE(id);
    const fs::path file = figures / (id + ".svg");
    ASSERT_TRUE(fs::exists(file));
    const std::string svg = test::read_bytes(file);
    EXPECT_EQ(svg.rfind("<svg id=\"" + id + "\"", 0), 0u);
    EXPECT_NE(svg.find("<style>\nsvg text {"), std::string::npos);
    EXPECT_NE(svg.find("svg .tick {"), std::string::npos);
    const std::string drawn = chromium(file, "--dump-dom", dir);  // the SVG document as Chromium parsed it
    ASSERT_NE(drawn.find("id=\"" + id + "\""), std::string::npos) << drawn.substr(0, 300);
    EXPECT_EQ(drawn_lines(drawn), drawn_lines(svg_by_id(html, id)));
    EXPECT_EQ(count(drawn, "class=\"cell\""), count(svg_by_id(html, id), "class=\"cell\""));
  }
  EXPECT_EQ(drawn_lines(test::read_bytes(figures / "plot-loss-vs-compute.svg")), 4u);
  EXPECT_EQ(count(test::read_bytes(figures / "plot-specialization.svg"), "<svg"), 4u);  // the panels stay inside

  const fs::path blocked = dir / "a-file";
  test::write_bytes(blocked, "x");
  r = test::run_upcycle({"report", (dir / "study").string(), "--out", (dir / "second.html").string(), "--figures",
                         (blocked / "figures").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("cannot create the figures directory"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "second.html"));
}

TEST(ReportCli, RunDirectoriesAndTitle) {
  test::ScratchDir dir;
  test::write_report_fixture(dir / "study");
  const fs::path page = dir / "runs.html";
  test::RunResult r = test::run_upcycle({"report", "--out", page.string(), (dir / "study/runs/upcycle").string(),
                                         (dir / "study/runs/moe-scratch").string(), "--title", "a<b&\"c\""});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string dom = chromium(page, "--dump-dom", dir);
  EXPECT_NE(dom.find("<h1>a&lt;b&amp;\"c\"</h1>"), std::string::npos);
  EXPECT_EQ(drawn_lines(svg_by_id(dom, "plot-loss-vs-compute")), 2u);
  EXPECT_NE(dom.find("training FLOPs"), std::string::npos);
}

TEST(ReportCli, BadInputIsOneLineAndWritesNothing) {
  test::ScratchDir dir;
  test::write_report_fixture(dir / "study");
  const fs::path page = dir / "report.html";
  const fs::path metrics = dir / "study/runs/moe-scratch/metrics.jsonl";
  std::ofstream(metrics, std::ios::app) << "[1, 2]\n";
  test::RunResult r = test::run_upcycle({"report", (dir / "study").string(), "--out", page.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "upcycle: error: metrics log line 17 is not a JSON object (" + metrics.string() + ")\n");
  EXPECT_FALSE(fs::exists(page));

  r = test::run_upcycle({"report", (dir / "missing").string(), "--out", page.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no such directory"), std::string::npos);
  EXPECT_FALSE(fs::exists(page));

  r = test::run_upcycle({"report", (dir / "study").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--out"), std::string::npos);
}

}  // namespace
}  // namespace upcycle
