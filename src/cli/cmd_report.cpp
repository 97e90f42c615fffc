// `upcycle report DIR... --out report.html [--title T] [--figures DIR]`: reads a study directory or
// train run directories (JSON files only), writes one self-contained HTML page atomically (and each of
// its plots as a standalone SVG with --figures) and prints the summary table. Bad input is a one-line
// error and leaves no output file behind.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/file_util.h"
#include "report/figure_export.h"
#include "report/html_report.h"
#include "report/run_data.h"
#include "report/finding.h"
#include "report/summary_table.h"

namespace upcycle::cli {
namespace fs = std::filesystem;

int run_report(const Args& args) {
  struct {
    std::vector<std::string> dirs;
    std::string out;
    std::string title;
    std::string figures;
  } o;
  // DIR… may come before or after the options; OptionSet binds single positionals only, so the
  // directories are taken out here (every option of this command but --help takes one value).
  Args rest;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.starts_with("-")) {
      rest.push_back(a);
      if (a.starts_with("--") && a.find('=') == std::string::npos && a != "--help" && i + 1 < args.size()) rest.push_back(args[++i]);
    } else {
      o.dirs.push_back(a);
    }
  }
  OptionSet set("report", "upcycle report DIR... --out REPORT.html [--title TEXT] [--figures DIR]",
                "Compare training runs in one self-contained HTML file (inline SVG plots, no JavaScript, no network:\n"
                "it opens offline and can be mailed). Each DIR is either a study directory written by `upcycle study`\n"
                "(it has study.json; give it alone) or one or more `upcycle train` run directories (config.json +\n"
                "metrics.jsonl). Only JSON files are read, so it works while runs are still training.\n\n"
                "The page shows mean and per-domain validation loss against compute (for a study: extra compute as %\n"
                "of the dense pretraining cost, so every variant is compared at equal cost; for run directories: the\n"
                "run's FLOPs; the dense pretraining run, when the study has it, as a grey reference line), the final\n"
                "loss per domain with Δ against the `dense-continuation` variant, expert-load heatmaps, routing by\n"
                "domain and expert specialisation (from runs/<variant>/analysis/*.json), and each run's commands to\n"
                "reproduce it. Per MoE variant it separates \"learns faster per token\" (Δ loss at equal training\n"
                "tokens) from \"wins per FLOP\" (Δ at equal training FLOPs). A variant a study trained at several\n"
                "learning rates is compared at its best one (lowest mean val loss at equal compute; ties to the\n"
                "smaller lr), with the whole sweep in its own table and plot. The summary table is printed here\n"
                "too. See docs/study.md.");
  std::string dirs_help;
  set.add_positional("DIR...", "study directory (study.json) or train run directories (config.json)", &dirs_help,
                     Required::kNo);
  set.add("out", "FILE", "the HTML file to write (replaced atomically)", &o.out);
  set.add("title", "TEXT", "page title (default: the study or run name)", &o.title);
  set.add("figures", "DIR",
          "also write every plot as DIR/<plot id>.svg, a standalone SVG with the page's chart styles (for a\n"
          "README or results page that links images; plot-domain-* and plot-specialization have their legend\n"
          "on the page only)",
          &o.figures);
  set.add_epilog(
      "examples:\n"
      "  upcycle report studies/core --out core.html\n"
      "  upcycle report runs/dense runs/upcycle --out compare.html --title \"dense vs upcycled\"\n"
      "  upcycle report studies/core --out core.html --figures docs/figures/core");
  if (!set.parse(rest)) return 0;
  if (o.dirs.empty()) throw Error("give at least one study or run directory before the options (upcycle report --help)");
  if (o.out.empty()) throw Error("--out REPORT.html is required");

  std::vector<fs::path> dirs(o.dirs.begin(), o.dirs.end());
  const report::ReportData data = report::load_report_data(dirs);

  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  const std::string page = report::render_html_report(data, {o.title, date});
  const std::vector<fs::path> figures = o.figures.empty() ? std::vector<fs::path>{}
                                                            : report::write_standalone_figures(page, o.figures);
  write_text_file_atomically(o.out, "report", page);

  std::fputs(report::render_summary_table(data).c_str(), stdout);
  std::printf("\n%s\nwrote %s\n", report::finding_sentence(data).c_str(), o.out.c_str());
  if (!figures.empty()) std::printf("wrote %zu figures to %s\n", figures.size(), o.figures.c_str());
  return 0;
}

}  // namespace upcycle::cli
