// Summary rows, the terminal table and the finding sentence (see summary_table.h).
#include "report/summary_table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace upcycle::report {

std::string format_number(const char* printf_format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, printf_format, value);
  return buf;
}

namespace {

std::string loss_text(const std::optional<double>& v) { return v ? format_number("%.4f", *v) : "—"; }

// Display width of UTF-8 text (counts code points; our text has no wide characters).
size_t width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string pad(const std::string& s, size_t w, bool right) {
  const std::string fill(w > width(s) ? w - width(s) : 0, ' ');
  return right ? fill + s : s + fill;
}

}  // namespace

std::string format_flops(double v) {
  if (!(v > 0)) return "—";
  std::string s = format_number("%.3g", v);
  if (auto e = s.find("e+"); e != std::string::npos) {
    s.erase(e + 1, 1);
    while (s.size() > e + 2 && s[e + 1] == '0') s.erase(e + 1, 1);
  }
  return s;
}

std::string format_x(const ReportData& data, double x) {
  if (data.x_axis == XAxis::kFlops) return format_flops(x) + " FLOPs";
  const double shown = std::round(x);  // the sign of what is printed: −0.3 reads "+0 %", not "−0 %"
  return (shown >= 0 ? "+" : "−") + format_number("%.0f", std::fabs(shown)) + " %";
}

std::string format_spent(double percent) { return format_number("%.0f", percent) + " %"; }

std::string format_delta(double delta) {
  if (std::fabs(delta) < 5e-5) return "±0.0000";
  return (delta > 0 ? "+" : "−") + format_number("%.4f", std::fabs(delta));
}

std::vector<SummaryRow> summary_rows(const ReportData& data) {
  const Variant* baseline = data.find(kBaselineVariant);
  const std::optional<double> base = baseline ? baseline->final_mean_loss() : std::nullopt;
  std::vector<SummaryRow> rows;
  for (const auto& v : data.variants) {
    SummaryRow r{v.name, v.status, v.steps_done, std::nullopt, std::nullopt, v.final_mean_loss(), {}, std::nullopt};
    if (!v.mean_loss.empty()) r.x = v.mean_loss.back().x;
    if (!v.mean_loss.empty() && data.x_axis == XAxis::kExtraComputePercent)
      r.spent = 100.0 * v.mean_loss.back().flops / data.dense_sunk_flops;
    for (const auto& d : data.domains) r.domain.push_back(v.final_domain_loss(d));
    if (r.mean && base) r.delta = *r.mean - *base;
    rows.push_back(std::move(r));
  }
  return rows;
}

std::string render_summary_table(const ReportData& data) {
  const bool study = data.x_axis == XAxis::kExtraComputePercent;
  std::vector<std::string> head{"variant", "status", "steps"};
  if (study) {
    head.push_back("spent");
    head.push_back("x pos");
  } else {
    head.push_back("FLOPs");
  }
  head.push_back("mean");
  for (const auto& d : data.domains) head.push_back(d);
  const bool has_delta = data.find(kBaselineVariant) != nullptr;
  if (has_delta) head.push_back("Δ mean");
  std::vector<std::vector<std::string>> cells{head};
  for (const auto& r : summary_rows(data)) {
    std::vector<std::string> row{r.variant, r.status, std::to_string(r.steps)};
    if (study) row.push_back(r.spent ? format_spent(*r.spent) : "—");
    row.push_back(r.x ? format_x(data, *r.x) : "—");
    row.push_back(loss_text(r.mean));
    for (const auto& d : r.domain) row.push_back(loss_text(d));
    if (has_delta) row.push_back(r.variant == kBaselineVariant ? "(baseline)" : r.delta ? format_delta(*r.delta) : "—");
    cells.push_back(std::move(row));
  }
  std::vector<size_t> w(head.size(), 0);
  for (const auto& row : cells)
    for (size_t i = 0; i < row.size(); ++i) w[i] = std::max(w[i], width(row[i]));
  std::string out;
  for (size_t r = 0; r < cells.size(); ++r) {
    for (size_t i = 0; i < cells[r].size(); ++i) out += (i ? "  " : "") + pad(cells[r][i], w[i], i >= 2);
    out += "\n";
    if (r == 0) {
      for (size_t i = 0; i < w.size(); ++i) out += (i ? "  " : "") + std::string(w[i], '-');
      out += "\n";
    }
  }
  if (study)
    out += "\nspent  = the run's own training FLOPs as % of the dense pretraining FLOPs\n"
           "x pos  = its position on the report's x axis: dense FLOPs in its start model + spent − 100 %\n"
           "mean   = mean validation loss over the domains (nats/token)" +
           std::string(has_delta ? std::string("; Δ mean = mean − ") + kBaselineVariant + "'s" : "") + "\n";
  return out;
}

namespace {

// Where the finding compares the variants. Once every evaluated run has finished the same budget, at
// their final evaluations: the numbers of the table, although the runs' final FLOPs differ by up to
// a step (a variant whose steps cost more stops a little earlier). Otherwise every curve is
// interpolated at the most compute all of them have reached, and the sentence says so.
struct ComparePoint {
  bool final = true;
  double flops = 0;       // run FLOPs compared at (final: the shared budget)
  std::string qualifier;  // "" for final evaluations, else why and how values were interpolated
};

ComparePoint compare_point(const ReportData& data) {
  double f_common = std::numeric_limits<double>::infinity(), budget = -1;
  size_t training = 0;
  bool equal_budgets = true;
  for (const auto& v : data.variants) {
    if (v.mean_loss.empty()) continue;
    f_common = std::min(f_common, v.mean_loss.back().flops);
    training += !v.finished();
    if (budget < 0) budget = v.budget_flops;
    equal_budgets = equal_budgets && v.budget_flops > 0 && std::fabs(v.budget_flops - budget) <= 1e-9 * budget;
  }
  if (training == 0 && equal_budgets) return {true, budget, ""};
  const std::string why = training ? std::to_string(training) + " variant" + (training > 1 ? "s" : "") + " still training"
                                   : "the budgets differ";
  return {false, f_common, " (values interpolated at that compute between evaluations: " + why + ")"};
}

}  // namespace

std::string finding_sentence(const ReportData& data) {
  size_t evaluated = 0, pending = 0;
  for (const auto& v : data.variants) {
    if (!v.started) ++pending;
    evaluated += !v.mean_loss.empty();
  }
  const std::string tail = pending ? " (" + std::to_string(pending) + " variant" + (pending > 1 ? "s" : "") +
                                         " not started yet)" : "";
  if (evaluated == 0) return "No validation results yet" + tail + ".";
  const ComparePoint cp = compare_point(data);
  struct At {
    std::string name;
    double loss;
  };
  std::vector<At> at;
  for (const auto& v : data.variants) {
    if (v.mean_loss.empty()) continue;
    if (cp.final)
      at.push_back({v.name, *v.final_mean_loss()});
    else if (auto l = loss_at_flops(v.mean_loss, cp.flops))
      at.push_back({v.name, *l});
  }
  std::sort(at.begin(), at.end(), [](const At& a, const At& b) { return a.loss < b.loss; });
  const std::string where = (data.x_axis == XAxis::kFlops
                                 ? "After " + format_flops(cp.flops) + " training FLOPs"
                                 : "After training compute equal to " + format_number("%.0f", 100 * cp.flops / data.dense_sunk_flops) +
                                       " % of the dense pretraining cost") +
                            cp.qualifier;
  const At& best = at.front();
  std::string s = where + ", " + best.name + " has the lowest mean validation loss (" + format_number("%.4f", best.loss) + ")";
  auto base = std::find_if(at.begin(), at.end(), [](const At& a) { return a.name == kBaselineVariant; });
  if (at.size() == 1) {
    s += "; no other variant has been evaluated that far";
  } else if (base != at.end() && base != at.begin()) {
    s += ", " + format_number("%.4f", base->loss - best.loss) + " below " + kBaselineVariant + " (" + format_number("%.4f", base->loss) + ")";
  } else {
    s += ", " + format_number("%.4f", at[1].loss - best.loss) + " below the runner-up, " + at[1].name + " (" + format_number("%.4f", at[1].loss) + ")";
  }
  s += tail + ".";
  // An MoE trained from scratch against the dense model it would replace (its start point at 0 %).
  const std::optional<double> dense =
      data.dense_pretrain ? data.dense_pretrain->final_mean_loss() : std::optional<double>();
  if (data.x_axis == XAxis::kExtraComputePercent && dense)
    for (const auto& v : data.variants) {
      if (v.sunk_flops != 0 || v.mean_loss.empty()) continue;
      const double loss = v.mean_loss.back().loss, spent = 100.0 * v.mean_loss.back().flops / data.dense_sunk_flops;
      s += " " + v.name + ", after " + format_number("%.0f", spent) + " % of the dense pretraining compute, reaches " + format_number("%.4f", loss) +
           " against the dense model's " + format_number("%.4f", *dense) +
           (loss <= *dense ? ": it has caught up" : ": it has not caught up") +
           " (Komatsuzaki et al. report ≈120 % needed).";
    }
  return s;
}

}  // namespace upcycle::report
