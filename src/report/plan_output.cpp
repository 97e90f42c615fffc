// Text and JSON of `upcycle plan` (plan_output.h). σ that a fit cannot determine (a singular
// covariance) is printed "n/a" and written as null.
#include "report/plan_output.h"

#include <cmath>
#include <cstdio>

namespace upcycle::report {
namespace {

std::string g(double v) {
  if (!std::isfinite(v)) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

Json number_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

std::string law_text(const LawFit& law) {
  std::string o = law.what + ": " + law.form + "\n  fitted to: ";
  for (size_t i = 0; i < law.variants.size(); ++i) o += (i ? ", " : "") + law.variants[i];
  o += "\n  ";
  for (size_t i = 0; i < law.params.size(); ++i)
    o += (i ? ", " : "") + law.params[i].name + " = " + g(law.params[i].value) + " ± " + g(law.params[i].sigma);
  o += "\n  " + std::to_string(law.fit.points) + " points, rms log-residual " + g(law.fit.rms_log_residual) +
       (law.fit.converged ? "" : " (did not converge)") + "\n";
  return o;
}

Json law_json(const LawFit& law) {
  Json params = Json::object();
  for (const NamedValue& v : law.params) params[v.name] = {{"value", v.value}, {"sigma", number_or_null(v.sigma)}};
  return {{"form", law.form}, {"variants", law.variants}, {"params", params}, {"points", law.fit.points},
          {"rms_log_residual", law.fit.rms_log_residual}, {"converged", law.fit.converged},
          {"extra_flops_range", {law.x_min, law.x_max}}};
}

const char* kind_name(CrossoverKind k) {
  switch (k) {
    case CrossoverKind::kStopsBeating: return "stops-beating";
    case CrossoverKind::kOvertakes: return "overtakes";
    case CrossoverKind::kAlwaysAhead: return "always-ahead";
    case CrossoverKind::kNeverAhead: return "never-ahead";
  }
  return "";
}

}  // namespace

std::string render_plan_text(const UpcyclingPlan& p) {
  std::string o = "study " + p.study + ": mean validation loss over the val domains, extra compute in FLOPs (dense pretraining = " +
                  g(p.dense_sunk_flops) + " FLOPs)\n";
  o += law_text(p.upcycled);
  if (p.scratch) o += law_text(*p.scratch);
  if (p.dense) o += law_text(*p.dense);
  for (const std::string& n : p.notes) o += "note: " + n + "\n";
  for (const std::string& f : plan_findings(p)) o += "finding: " + f + "\n";
  return o;
}

Json plan_json(const UpcyclingPlan& p) {
  Json j = {{"format", "upcycle-plan"}, {"version", 1}, {"study", p.study}, {"dense_sunk_flops", p.dense_sunk_flops},
            {"d1_unit", p.d1_unit}, {"d1", p.d1}, {"d1_values", p.d1_values}, {"interaction", p.interaction},
            {"upcycled_flops_per_token", p.upcycled_flops_per_token}, {"horizon_flops", p.horizon_flops},
            {"upcycled", law_json(p.upcycled)}, {"scratch", p.scratch ? law_json(*p.scratch) : Json(nullptr)},
            {"dense", p.dense ? law_json(*p.dense) : Json(nullptr)}, {"crossovers", Json::array()},
            {"notes", p.notes}, {"findings", plan_findings(p)}};
  for (const Crossover& c : p.crossovers) {
    const bool crossing = c.kind == CrossoverKind::kStopsBeating || c.kind == CrossoverKind::kOvertakes;
    j["crossovers"].push_back({{"against", c.against}, {"variant", c.variant}, {"kind", kind_name(c.kind)},
                               {"extra_flops", crossing ? Json(c.extra_flops) : Json(nullptr)},
                               {"sigma", crossing ? number_or_null(c.sigma) : Json(nullptr)},
                               {"extra_percent", crossing ? Json(100 * c.extra_flops / p.dense_sunk_flops) : Json(nullptr)},
                               {"extrapolated", crossing && c.extrapolated}});
  }
  return j;
}

}  // namespace upcycle::report
