// `upcycle plan` as a user runs it on the hand-made study of support/plan_fixture.h, whose crossovers
// are the roots of two quadratics (+200 % vs from scratch, +400 % vs dense continuation): the printed
// findings and the --json record carry them; `upcycle report` draws the fitted laws (plot-plan, dashed
// polylines, a mark per crossover). Bad input: one-line error, exit 2, no JSON file written.
#include <gtest/gtest.h>

#include <fstream>

#include "core/json.h"
#include "support/plan_fixture.h"
#include "support/report_fixture.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

TEST(PlanCli, PrintsFindingsAndWritesJson) {
  test::ScratchDir dir;
  test::write_plan_fixture(dir / "study");
  const fs::path json = dir / "plan.json";
  test::RunResult r = test::run_upcycle({"plan", (dir / "study").string(), "--json", json.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("finding: upcycling (upcycle) stops beating from scratch (moe-from-scratch) at 2e+12"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("+400 %"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("extrapolated beyond the data"), std::string::npos) << r.out;
  const Json j = Json::parse(test::read_bytes(json));
  EXPECT_EQ(j["format"], "upcycle-plan");
  EXPECT_NEAR(j["crossovers"][0]["extra_flops"].get<double>(), 2e12, 2e7);
  EXPECT_NEAR(j["upcycled"]["params"]["E"]["value"].get<double>(), 2.1, 1e-6);

  const fs::path page = dir / "report.html";
  r = test::run_upcycle({"report", (dir / "study").string(), "--out", page.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string html = test::read_bytes(page);
  const size_t start = html.find("<svg id=\"plot-plan\"");
  ASSERT_NE(start, std::string::npos);
  const std::string svg = html.substr(start, html.find("</svg>", start) - start);
  EXPECT_EQ(count(svg, "<polyline class=\"series fit\""), 3u);  // upcycled, from scratch, dense
  EXPECT_EQ(count(svg, "class=\"vline mark\""), 3u);             // data end + two crossovers
  EXPECT_NE(svg.find("vs from scratch: +200 %"), std::string::npos);
  EXPECT_NE(svg.find("extrapolated →"), std::string::npos);
}

TEST(PlanCli, BadInput) {
  test::ScratchDir dir;
  const fs::path json = dir / "plan.json";
  test::RunResult r = test::run_upcycle({"plan", (dir / "missing").string(), "--json", json.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count(r.err, "\n"), 1u) << r.err;
  EXPECT_FALSE(fs::exists(json));

  // The report fixture's study records no `upcycle convert` command for its "upcycle" variant.
  test::write_report_fixture(dir / "study");
  r = test::run_upcycle({"plan", (dir / "study").string(), "--json", json.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("upcycle: error: variant 'upcycle' is not an MoE converted from the dense model"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(json));

  test::write_plan_fixture(dir / "plan-study");
  r = test::run_upcycle({"plan", (dir / "plan-study").string(), "--recipe", "nope"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "upcycle: error: the study has no variant 'nope' (choose one with --recipe) (" + (dir / "plan-study").string() + ")\n");

  r = test::run_upcycle({"plan", (dir / "plan-study/runs/upcycle").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("needs a study directory"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace upcycle
