// `upcycle plan STUDY_DIR [--json FILE]`: fits the upcycling scaling law (Liew et al. 2025) and power
// laws for the from-scratch and dense baselines to a study's runs and predicts where upcycling stops
// beating each (report/upcycling_plan.h). Reads JSON files only; a study without the runs the law
// needs is a one-line error, exit 2, and no JSON file is written.
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/file_util.h"
#include "report/plan_output.h"
#include "report/run_data.h"
#include "report/upcycling_plan.h"

namespace upcycle::cli {

int run_plan(const Args& args) {
  struct {
    std::string dir, json;
    report::PlanOptions plan;
  } o;
  OptionSet set("plan", "upcycle plan STUDY_DIR [--json FILE] [--recipe VARIANT] [--scratch VARIANT] [--dense VARIANT]",
                "Fit the upcycling scaling law of Liew, Kato & Takase (arXiv 2502.03009) to a study's runs and predict at\n"
                "which extra compute upcycling stops beating an MoE trained from scratch and dense continuation.\n\n"
                "  upcycled:     L(D1, D2) = A·D1^-α1 · D2^(-α2 + α3·ln D1) + E\n"
                "                D1 = dense pretraining tokens of the start checkpoint, D2 = tokens trained after upcycling;\n"
                "                α3 > 0 means the longer the dense model was trained, the less each upcycled token helps.\n"
                "  from scratch, dense:  L(C) = A·C^-a + E, C = the model's total training FLOPs\n\n"
                "The points are the mean validation loss at every evaluation of every run (each seed separately). The\n"
                "upcycled law takes the --recipe variant and every variant with the same `convert:` flags that starts\n"
                "from another pretraining step (`from:` in the spec): with one dense start the interaction cannot be\n"
                "measured and the D2-only law A·D2^-α2 + E is fitted (the output says so and how to add a D1 sweep).\n"
                "The dense law fits the pretraining run and the continuation together, one lineage.\n\n"
                "Fit: Huber loss (δ = 1e-3) of log residuals, Levenberg–Marquardt from several starts (deterministic).\n"
                "± is one standard deviation from the fit's covariance; the crossover's ± propagates both fits' (delta\n"
                "method). Crossovers are compared at equal extra compute X, the x axis of `upcycle report` (upcycled at\n"
                "D2 = X / its FLOPs per token, the others at C = dense pretraining + X), searched up to 10× the largest\n"
                "budget; one beyond the data is marked extrapolated. At toy scale a learning curve under one LR schedule\n"
                "stands in for runs trained to each budget: read the numbers as a trend (docs/study.md, \"upcycle plan\").");
  set.add_positional("STUDY_DIR", "a study directory written by `upcycle study` (study.json + runs/)", &o.dir, Required::kYes);
  set.add("json", "FILE", "also write the fits, crossovers and findings as JSON (format \"upcycle-plan\", written atomically)", &o.json);
  set.add("recipe", "VARIANT", "the upcycled variant whose law is fitted", &o.plan.recipe);
  set.add("scratch", "VARIANT", "the MoE-from-scratch variant (default: the only MoE variant with no sunk cost)", &o.plan.scratch);
  set.add("dense", "VARIANT", "the dense continuation variant", &o.plan.dense);
  set.add_epilog(
      "examples:\n"
      "  upcycle plan out/demo/study\n"
      "  upcycle plan studies/ablations --recipe upcycle --json plan.json   # with upcycle-from-500/-1000: the full law");
  if (!set.parse(args)) return 0;

  const report::ReportData data = report::load_report_data({o.dir});
  const report::UpcyclingPlan plan = report::fit_upcycling_plan(data, o.plan);
  if (!o.json.empty()) write_text_file_atomically(o.json, "plan JSON", report::plan_json(plan).dump(1) + "\n");
  std::fputs(report::render_plan_text(plan).c_str(), stdout);
  if (!o.json.empty()) std::printf("wrote %s\n", o.json.c_str());
  return 0;
}

}  // namespace upcycle::cli
