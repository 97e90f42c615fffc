// plan_section (plan_figure.h). The x axis is the report's (extra compute, % of the dense pretraining);
// each law is drawn from the first x it was fitted on to a right edge that shows every crossover
// (≤ the search horizon, ≥ twice the data's extent), so the reader sees where the prediction leaves
// the data. Colours are the variants' colours on the main loss plot.
#include "report/plan_figure.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "report/summary_table.h"
#include "report/svg_plot.h"
#include "report/upcycling_plan.h"

namespace upcycle::report {
namespace {

size_t colour_of(const ReportData& d, const std::string& name) {
  for (size_t i = 0; i < d.variants.size(); ++i)
    if (d.variants[i].name == name) return i;
  return 0;
}

std::string pct(double flops, double sunk) { return format_number("%+.0f", 100 * flops / sunk) + " %"; }

}  // namespace

std::string plan_section(const ReportData& d) {
  if (d.x_axis != XAxis::kExtraComputePercent) return "";
  std::string head = "<section id=\"plan\"><h2>Scaling-law prediction (<code>upcycle plan</code>)</h2>";
  UpcyclingPlan p;
  try {
    p = fit_upcycling_plan(d);
  } catch (const Error& e) {
    return head + "<p class=\"note\">No scaling-law fit: " + xml_escape(e.message()) + ".</p></section>\n";
  }
  const double sunk = d.dense_sunk_flops;
  double data_end = p.upcycled.x_max, right = 0;
  for (const auto* law : {p.scratch ? &*p.scratch : nullptr, p.dense ? &*p.dense : nullptr})
    if (law != nullptr) data_end = std::max(data_end, law->x_max);
  right = 2 * std::max(data_end, 0.01 * sunk);
  for (const Crossover& c : p.crossovers)
    if (c.kind == CrossoverKind::kStopsBeating || c.kind == CrossoverKind::kOvertakes) right = std::max(right, 1.2 * c.extra_flops);
  right = std::min(right, p.horizon_flops);

  LineChart c{"plot-plan", "", "extra compute, % of the dense pretraining FLOPs", "mean validation loss (nats/token)", {}, 0.0,
              "dense model", 960, 440};
  const auto data_series = [&](const std::string& name, size_t colour, const std::string& stroke) {
    const Variant* v = name == kDensePretrainName ? (d.dense_pretrain ? &*d.dense_pretrain : nullptr) : d.find(name);
    if (v == nullptr) return;
    Series s{name, {}, colour, stroke};
    for (const LossPoint& lp : v->mean_loss) s.points.push_back({lp.x, lp.loss});
    c.series.push_back(std::move(s));
  };
  const auto law_series = [&](const std::string& name, size_t colour, const std::string& stroke, double from,
                              const auto& loss_at) {
    Series s{name, {}, colour, stroke};
    s.fitted = true;
    constexpr int kSamples = 80;
    for (int i = 0; i <= kSamples; ++i) {
      const double x = from + (right - from) * i / kSamples;
      const double l = loss_at(x);
      if (std::isfinite(l)) s.points.push_back({100 * x / sunk, l});
    }
    c.series.push_back(std::move(s));
  };
  const std::string recipe = p.upcycled.variants.front();
  data_series(recipe, colour_of(d, recipe), "");
  law_series(recipe + " (law)", colour_of(d, recipe), "", std::max(p.upcycled.x_min, 1e-3 * sunk),
             [&](double x) { return p.upcycled_loss(x); });
  if (p.scratch) {
    const std::string& name = p.scratch->variants.front();
    data_series(name, colour_of(d, name), "");
    law_series(name + " (law)", colour_of(d, name), "", p.scratch->x_min, [&](double x) { return p.baseline_loss(*p.scratch, x); });
  }
  if (p.dense) {
    const std::string& name = p.dense->variants.front();
    if (d.dense_pretrain) data_series(kDensePretrainName, 0, "#8c959f");
    data_series(name, colour_of(d, name), "");
    law_series(name + " (law)", colour_of(d, name), "", p.dense->x_min, [&](double x) { return p.baseline_loss(*p.dense, x); });
  }
  c.marks.push_back({100 * data_end / sunk, "extrapolated →"});
  for (const Crossover& x : p.crossovers)
    if ((x.kind == CrossoverKind::kStopsBeating || x.kind == CrossoverKind::kOvertakes) && x.extra_flops <= right)
      c.marks.push_back({100 * x.extra_flops / sunk, "vs " + x.against + ": " + pct(x.extra_flops, sunk)});

  std::string caption =
      "<b>Fitted scaling laws and where upcycling stops paying.</b> Markers are the mean validation loss of the runs "
      "(each variant's mean over seeds); dashed lines are the laws fitted to every run's evaluations: " +
      xml_escape(p.upcycled.form) + " for " + xml_escape(recipe);
  if (p.scratch || p.dense) caption += ", L(C) = A·C<sup>−a</sup> + E in each model's total training FLOPs C for the baselines";
  caption += ". Right of the line marked “extrapolated” no run was trained: the curves there are predictions. "
             "The same numbers with their uncertainties: <code>upcycle plan STUDY_DIR</code> (docs/study.md).<ul>";
  for (const std::string& f : plan_findings(p)) caption += "<li>" + xml_escape(f) + "</li>";
  for (const std::string& n : p.notes) caption += "<li>note: " + xml_escape(n) + "</li>";
  caption += "</ul>";
  return head + "<figure>" + render_line_chart(c) + "<figcaption>" + caption + "</figcaption></figure></section>\n";
}

}  // namespace upcycle::report
