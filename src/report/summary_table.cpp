// Summary rows and the terminal table (see summary_table.h).
#include "report/summary_table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "report/token_view.h"

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

std::string format_loss_range(const Spread& s) {
  if (s.min == s.max) return format_number("%.4f", s.min);
  return format_number("%.4f", s.min) + "–" + format_number("%.4f", s.max);
}

std::string format_delta_range(const Spread& s) {
  if (s.min == s.max) return format_delta(s.min);
  return format_delta(s.min) + " … " + format_delta(s.max);
}

std::string paired_verdict(const Spread& d) {
  if (d.n < 2) return "one seed";
  if (d.max < 0) return "lower for every seed";
  if (d.min > 0) return "higher for every seed";
  return "sign varies";
}

namespace {

// A row's final value in one column (domain empty: the mean over domains): the last point of the
// variant's curve and, with seeds, each seed's value at that step.
struct Final {
  std::optional<double> value;
  std::map<int64_t, double> by_seed;
};

Final final_of(const Variant& v, const std::string& domain) {
  const std::vector<LossPoint>* curve = v.loss_curve(domain);
  if (curve == nullptr || curve->empty()) return {};
  return {curve->back().loss, seed_losses_at_step(v, curve->back().step, domain)};
}

// v − baseline: paired by seed when both have seeds (its mean, and its spread), else of the two values.
std::pair<std::optional<double>, std::optional<Spread>> delta_of(const Final& v, const Final& base) {
  if (!v.value || !base.value) return {};
  if (v.by_seed.empty() || base.by_seed.empty()) return {*v.value - *base.value, std::nullopt};
  const std::optional<Spread> d = spread(paired_differences(v.by_seed, base.by_seed));
  if (!d) return {};  // no seed evaluated by both yet
  return {d->mean, d};
}

}  // namespace

std::vector<SummaryRow> summary_rows(const ReportData& data) {
  const Variant* baseline = data.find(kBaselineVariant);
  std::vector<SummaryRow> rows;
  for (const auto& v : data.variants) {
    SummaryRow r;
    r.variant = v.name, r.status = v.status, r.steps = v.steps_done;
    if (!v.mean_loss.empty()) r.x = v.mean_loss.back().x;
    if (!v.mean_loss.empty() && data.x_axis == XAxis::kExtraComputePercent)
      r.spent = 100.0 * v.mean_loss.back().flops / data.dense_sunk_flops;
    r.seeds_listed = v.seed_runs.size();
    std::vector<std::string> columns = data.domains;
    columns.push_back("");  // the mean over domains, last
    for (const std::string& column : columns) {
      const Final f = final_of(v, column);
      const auto [delta, delta_spread] = baseline ? delta_of(f, final_of(*baseline, column)) : decltype(delta_of(f, f)){};
      const std::optional<Spread> s = spread(f.by_seed);
      if (column.empty()) {
        r.mean = f.value, r.delta = delta, r.mean_spread = s, r.delta_spread = delta_spread;
        r.seeds = f.by_seed.size();
      } else {
        r.domain.push_back(f.value), r.domain_delta.push_back(delta);
        r.domain_spread.push_back(s), r.domain_delta_spread.push_back(delta_spread);
      }
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

namespace {

// Columns padded to their widest cell, numbers right-aligned and text (columns marked in `left`)
// left-aligned, a rule under the header.
std::string render_grid(const std::vector<std::vector<std::string>>& cells, const std::vector<bool>& left) {
  std::vector<size_t> w;
  for (const auto& row : cells)
    for (size_t i = 0; i < row.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], width(row[i]));
    }
  std::string out;
  for (size_t r = 0; r < cells.size(); ++r) {
    std::string line;
    for (size_t i = 0; i < cells[r].size(); ++i) line += (i ? "  " : "") + pad(cells[r][i], w[i], !(i < left.size() && left[i]));
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
    if (r == 0) {
      for (size_t i = 0; i < w.size(); ++i) out += (i ? "  " : "") + std::string(w[i], '-');
      out += "\n";
    }
  }
  return out;
}

// The spread over seeds: one row per variant trained with seeds.
std::string seed_table(const ReportData& data, const std::vector<SummaryRow>& rows) {
  const bool has_delta = data.find(kBaselineVariant) != nullptr;
  std::vector<std::vector<std::string>> cells{{"variant", "seeds", "mean min–max"}};
  if (has_delta) cells[0].insert(cells[0].end(), {"Δ min–max", "paired Δ"});
  for (const auto& r : rows) {
    if (r.seeds_listed == 0) continue;
    std::vector<std::string> row{r.variant, r.seeds == r.seeds_listed ? std::to_string(r.seeds)
                                                                      : std::to_string(r.seeds) + "/" + std::to_string(r.seeds_listed),
                                 r.mean_spread ? format_loss_range(*r.mean_spread) : "—"};
    if (has_delta && r.variant == kBaselineVariant) row.insert(row.end(), {"(baseline)", ""});
    else if (has_delta) row.insert(row.end(), {r.delta_spread ? format_delta_range(*r.delta_spread) : "—",
                                               r.delta_spread ? paired_verdict(*r.delta_spread) : ""});
    cells.push_back(std::move(row));
  }
  if (cells.size() == 1) return "";
  std::string out = "\nOver seeds:\n" + render_grid(cells, {true, false, false, false, true});
  out += "\nseeds        = seed runs in the means above (of those listed: n/N while some are still to come)\n"
         "mean min–max = the lowest and highest seed's final mean validation loss\n";
  if (has_delta)
    out += std::string("Δ min–max    = mean loss − ") + kBaselineVariant +
           "'s, paired by seed (same seed = same data order);\n"
           "               Δ mean above is their mean; paired Δ: lower/higher for every seed, or sign varies\n";
  return out;
}

// Each learning-rate sweep: every lr's mean loss at the sweep's compare point, the chosen one marked.
std::string sweep_table(const ReportData& data) {
  if (data.sweeps.empty()) return "";
  std::vector<std::vector<std::string>> cells{{"variant", "lr", "status", "mean", "vs chosen"}};
  for (const LrSweep& sweep : data.sweeps)
    for (size_t i = 0; i < sweep.runs.size(); ++i) {
      const bool chosen = sweep.best == i;
      const std::optional<Spread> sp = spread(sweep.seed_loss[i]);
      std::string loss = loss_text(sweep.loss[i]);
      if (sweep.loss[i] && sp && sp->n > 1) loss += " (" + format_loss_range(*sp) + ")";
      cells.push_back({sweep.variant, format_number("%g", *sweep.runs[i].lr), sweep.runs[i].status, loss,
                       chosen ? "chosen" : sweep.loss[i] && sweep.best ? format_delta(*sweep.loss[i] - *sweep.loss[*sweep.best]) : ""});
    }
  return "\nLearning-rate sweeps (each variant above is compared at its chosen lr):\n" +
         render_grid(cells, {true, false, true, false, true}) +
         "mean   = mean validation loss at the most training FLOPs every evaluated lr of the sweep reached\n"
         "         (with seeds the mean over them, min–max in brackets)\n"
         "chosen = the lowest mean; equal means go to the smaller lr\n";
}

// `text` broken at spaces into lines of at most `columns` code points, the first indented by `first`,
// the others by `rest` (a word longer than a line gets a line of its own).
std::string wrap(const std::string& text, size_t columns, const std::string& first, const std::string& rest) {
  std::string out, line = first;
  bool empty = true;  // no word on `line` yet
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(start, end - start);
    if (!empty && width(line) + 1 + width(word) > columns) {
      out += line + "\n";
      line = rest;
      empty = true;
    }
    line += (empty ? "" : " ") + word;
    empty = false;
    start = end + 1;
  }
  return out + line + "\n";
}

// Per token against per FLOP for each MoE variant (token_view.h), one sentence each, wrapped to fit
// the table's 100-column terminal.
std::string token_view_lines(const ReportData& data) {
  std::string out;
  for (const TokenViewRow& r : token_view_rows(data))
    if (const std::string s = token_view_sentence(r); !s.empty()) out += wrap(s, 96, "  ", "    ");
  return out.empty() ? "" : "\nPer token and per FLOP, against " + std::string(kBaselineVariant) + ":\n" + out;
}

}  // namespace

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
  const std::vector<SummaryRow> rows = summary_rows(data);
  bool seeded = false;
  for (const auto& r : rows) {
    std::vector<std::string> row{r.variant, r.status, std::to_string(r.steps)};
    if (study) row.push_back(r.spent ? format_spent(*r.spent) : "—");
    row.push_back(r.x ? format_x(data, *r.x) : "—");
    row.push_back(loss_text(r.mean));
    for (const auto& d : r.domain) row.push_back(loss_text(d));
    if (has_delta) row.push_back(r.variant == kBaselineVariant ? "(baseline)" : r.delta ? format_delta(*r.delta) : "—");
    cells.push_back(std::move(row));
    seeded = seeded || r.seeds_listed > 0;
  }
  std::string out = render_grid(cells, {true, true});
  if (study)
    out += "\nspent  = the run's own training FLOPs as % of the dense pretraining FLOPs\n"
           "x pos  = its position on the report's x axis: dense FLOPs in its start model + spent − 100 %\n"
           "mean   = mean validation loss over the domains (nats/token)" +
           std::string(seeded ? ", then over the seeds\n" : "") +
           std::string(!has_delta ? "" : seeded ? std::string("Δ mean = mean of the differences to ") + kBaselineVariant + "'s, paired by seed"
                                               : std::string("; Δ mean = mean − ") + kBaselineVariant + "'s") +
           (seeded && !has_delta ? "" : "\n");
  return out + seed_table(data, rows) + sweep_table(data) + token_view_lines(data);
}

}  // namespace upcycle::report
