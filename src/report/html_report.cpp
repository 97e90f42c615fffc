// The report page (see html_report.h): header with the computed finding, then one section per plot
// or table. Colours follow the variant's position in the study, so a variant looks the same in
// every figure.
#include "report/html_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "report/html_report_style.h"
#include "report/finding.h"
#include "report/plan_figure.h"
#include "report/summary_table.h"
#include "report/svg_plot.h"
#include "report/token_view.h"

namespace upcycle::report {
namespace {

std::string esc(std::string_view s) { return xml_escape(s); }

std::string sci(double v) { return format_flops(v); }

std::string grouped(double v) {
  std::string digits = format_number("%.0f", v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// The dense pretraining run: a neutral reference line, not one of the compared variants.
constexpr const char* kDenseGrey = "#8c959f";

// The dense pretraining curve (whole-model mean, or one domain) as a grey series; nullopt without one.
std::optional<Series> dense_series(const ReportData& d, const std::string* domain) {
  if (!d.dense_pretrain) return std::nullopt;
  Series s{kDensePretrainName, {}, 0, kDenseGrey};
  const std::vector<LossPoint>* points = d.dense_pretrain->loss_curve(domain ? *domain : "");
  if (points == nullptr) return std::nullopt;
  for (const auto& p : *points) s.points.push_back({p.x, p.loss});
  return s;
}

// A variant's curve (mean over domains, or one domain): with seeds, each seed's run as a faint line
// under the mean over seeds, in the variant's colour.
void add_variant_series(std::vector<Series>& out, const Variant& v, size_t colour, const std::string* domain) {
  const auto curve = [&](const Variant& run) { return run.loss_curve(domain ? *domain : ""); };
  for (const Variant& run : v.seed_runs) {
    Series s{run.name, {}, colour};
    s.faint = true;
    if (const auto* points = curve(run))
      for (const auto& p : *points) s.points.push_back({p.x, p.loss});
    out.push_back(std::move(s));
  }
  Series s{v.name, {}, colour};
  if (const auto* points = curve(v))
    for (const auto& p : *points) s.points.push_back({p.x, p.loss});
  out.push_back(std::move(s));
}

bool any_seeded(const ReportData& d) {
  return std::any_of(d.variants.begin(), d.variants.end(), [](const Variant& v) { return v.seeded(); });
}

// The seed run a seeded variant's heatmaps show (the first one started), for their titles.
std::string heatmap_seed(const Variant& v) {
  for (const Variant& s : v.seed_runs)
    if (s.started && s.seed) return " · seed " + std::to_string(*s.seed);
  return "";
}

// A command line broken before each " --" flag, continued lines ending in " \\" (still copy-pasteable).
std::string shell_lines(const std::string& command) {
  std::string out;
  for (size_t i = 0; i < command.size(); ++i) {
    if (command.compare(i, 3, " --") == 0) {
      out += " \\\n    ";
      continue;  // the space is replaced by the break; "--" follows
    }
    out += command[i];
  }
  return out;
}

std::string x_label(const ReportData& d) {
  return d.x_axis == XAxis::kFlops ? "training FLOPs" : "extra compute, % of the dense pretraining FLOPs";
}

std::optional<double> zero_line(const ReportData& d) {
  return d.x_axis == XAxis::kExtraComputePercent ? std::optional<double>(0.0) : std::nullopt;
}

std::string html_legend(const ReportData& d, bool moe_only) {
  std::string o = "<div class=\"legend-html\">";
  if (!moe_only && d.dense_pretrain)
    o += std::string("<span><span class=\"swatch\" style=\"background:") + kDenseGrey + "\"></span>" + kDensePretrainName + "</span>";
  for (size_t i = 0; i < d.variants.size(); ++i) {
    if (moe_only && !d.variants[i].is_moe()) continue;
    o += "<span><span class=\"swatch\" style=\"background:" + palette_colour(i) + "\"></span>" + esc(d.variants[i].name) + "</span>";
  }
  return o + "</div>";
}

std::string figure(const std::string& svg, const std::string& caption) {
  return "<figure>" + svg + "<figcaption>" + caption + "</figcaption></figure>\n";
}

std::string header(const ReportData& d, const PageOptions& o) {
  const std::string title = !o.title.empty() ? o.title : d.x_axis == XAxis::kFlops ? "upcycle report: " + d.name
                                                                                     : "upcycle study: " + d.name;
  std::string h = "<header><h1>" + esc(title) + "</h1><p class=\"meta\">";
  if (d.x_axis == XAxis::kExtraComputePercent) h += "Study <b>" + esc(d.name) + "</b> · ";
  h += "generated " + esc(o.generated) + " · from ";
  for (size_t i = 0; i < d.sources.size(); ++i) h += (i ? ", " : "") + std::string("<code>") + esc(d.sources[i]) + "</code>";
  h += "</p><p>Compared:</p><ul class=\"variants\">";
  for (const Variant& v : d.variants)
    h += "<li><b>" + esc(v.name) + "</b> <span class=\"kind\">" + esc(v.kind) + "</span>" +
         (v.description.empty() ? "" : " — " + esc(v.description)) +
         (v.sweep.empty() || !v.lr ? "" : " (at lr " + esc(format_number("%g", *v.lr)) + ", the best of its learning-rate sweep)") +
         "</li>";
  h += "</ul><p>";
  if (d.x_axis == XAxis::kExtraComputePercent)
    h += "Every variant gets the same budget, " + format_number("%.0f", 100 * d.extra_compute) +
         " % of the dense model's pretraining FLOPs (" + sci(d.dense_sunk_flops) + "), on top of what its start model already cost.";
  h += "</p><p class=\"finding\"><strong>Finding.</strong> " + esc(finding_sentence(d)) + "</p></header>\n";
  return h;
}

// Per token against per FLOP, for each MoE variant against the baseline (token_view.h): a table and
// the sentences computed from it.
std::string token_view_table(const ReportData& d) {
  const std::vector<TokenViewRow> rows = token_view_rows(d);
  if (rows.empty()) return "";
  const auto delta = [](const std::optional<double>& v) { return v ? esc(format_delta(*v)) : std::string("—"); };
  const auto at = [](const std::optional<double>& v) { return v ? esc(format_flops(*v)) : std::string("—"); };
  std::string o = "<table id=\"table-token-view\"><tr><th>MoE variant</th><th>FLOPs per token vs " + std::string(kBaselineVariant) +
                  "</th><th>Δ loss at equal tokens</th><th>tokens</th><th>Δ loss at equal FLOPs</th><th>FLOPs</th></tr>";
  for (const TokenViewRow& r : rows)
    o += "<tr><td>" + esc(r.variant) + "</td><td>" + (r.cost_ratio > 0 ? format_number("%.2f", r.cost_ratio) + "×" : "—") +
         "</td><td>" + delta(r.per_token_delta) + "</td><td>" + at(r.tokens) + "</td><td>" + delta(r.per_flop_delta) +
         "</td><td>" + at(r.flops) + "</td></tr>";
  o += "</table>";
  const std::string text = token_view_text(d);
  return "<figure>" + o + "<figcaption><b>Learns faster per token, or wins per FLOP?</b> Each MoE variant's mean "
         "validation loss minus " + std::string(kBaselineVariant) + "'s (negative = better), once at the most training "
         "tokens both runs have seen and once at equal training FLOPs: the final evaluations once both have finished "
         "the same budget (the table's Δ), else the most FLOPs both have spent (the other run interpolated "
         "between its evaluations" + std::string(any_seeded(d) ? "; means over seeds" : "") + "). A top-2 MoE layer costs "
         "more FLOPs per token than the dense layer it replaces, so it can win the first comparison and lose the second." +
         (text.empty() ? "" : " <span id=\"token-view-finding\">" + esc(text) + "</span>") + "</figcaption></figure>";
}

// The same curves against each run's own training tokens: what the compute axis charges an MoE for
// (its larger FLOPs per token) is taken out, leaving how much each model learns per token.
std::string tokens_figure(const ReportData& d) {
  LineChart c{"plot-loss-vs-tokens", "", "training tokens of the run", "mean validation loss (nats/token)", {},
              std::nullopt, "", 960, 360};
  for (size_t i = 0; i < d.variants.size(); ++i) {
    Series s{d.variants[i].name, {}, i};
    for (const auto& p : d.variants[i].mean_loss) s.points.push_back({p.tokens, p.loss});
    c.series.push_back(std::move(s));
  }
  return figure(render_line_chart(c),
                "<b>The same, against training tokens.</b> Each run's own tokens (the dense pretraining not counted). "
                "A model with more parameters per token's compute (an MoE) should learn at least as much per token; "
                "the plot above charges it for its larger FLOPs per token. A variant ahead here but behind above "
                "learns more per token than it costs.") +
         token_view_table(d);
}

std::string loss_section(const ReportData& d) {
  LineChart c{"plot-loss-vs-compute", "", x_label(d), "mean validation loss (nats/token)", {}, zero_line(d), "dense model", 960, 440};
  if (!c.vline) c.vline_label.clear();
  if (auto s = dense_series(d, nullptr)) c.series.push_back(std::move(*s));
  for (size_t i = 0; i < d.variants.size(); ++i) add_variant_series(c.series, d.variants[i], i, nullptr);
  std::string caption =
      "<b>Mean validation loss against compute.</b> Each point is one evaluation: the mean over the validation "
      "domains of the loss at that step. ";
  caption += d.x_axis == XAxis::kFlops
                 ? "The x axis is the run's cumulative training FLOPs. Lower is better; at any x, the lowest curve "
                   "reached the best loss for that compute."
                 : "The x axis counts all compute in the model so far, relative to the dense pretraining cost: the "
                   "dashed line at 0 % is the dense model everyone starts from, a run continuing or upcycling it starts "
                   "there, an MoE trained from scratch starts at −100 %. Lower is better; compare curves at the same x.";
  if (d.dense_pretrain)
    caption += " The grey line is the dense pretraining run itself (−100 % to 0 %): the reference an MoE trained "
               "from scratch on the same compute has to beat.";
  if (any_seeded(d))
    caption += " Each variant was trained once per seed: the line with markers is the mean over its seeds, the thin "
               "lines in the same colour are the seeds' own runs (their spread is the noise a difference must exceed).";
  return "<section><h2>Validation loss against compute</h2>" + figure(render_line_chart(c), caption) +
         tokens_figure(d) + "</section>\n";
}

// The learning-rate sweeps (lr_sweep.h): every run's loss at the sweep's compare point against its lr,
// so the reader sees how the compared lr was chosen. Colours are the variant's.
std::string sweep_section(const ReportData& d) {
  if (d.sweeps.empty()) return "";
  LineChart c{"plot-lr-sweep", "", "peak learning rate, log₁₀ (−3 = 1e-3)", "mean validation loss (nats/token)", {},
              std::nullopt, "", 760, 360};
  std::string rows;
  for (const LrSweep& sweep : d.sweeps) {
    size_t colour = 0;
    for (size_t i = 0; i < d.variants.size(); ++i)
      if (d.variants[i].name == sweep.variant) colour = i;
    Series s{sweep.variant, {}, colour};
    for (size_t i = 0; i < sweep.runs.size(); ++i) {
      const Variant& run = sweep.runs[i];
      const bool chosen = sweep.best == i;
      if (sweep.loss[i]) s.points.push_back({std::log10(*run.lr), *sweep.loss[i]});
      const std::optional<Spread> sp = spread(sweep.seed_loss[i]);
      std::string loss = sweep.loss[i] ? format_number("%.4f", *sweep.loss[i]) : "—";
      if (sweep.loss[i] && sp && sp->n > 1) loss += "<small class=\"spread\">" + esc(format_loss_range(*sp)) + "</small>";
      const std::string gap = sweep.loss[i] && sweep.best && !chosen
                                  ? esc(format_delta(*sweep.loss[i] - *sweep.loss[*sweep.best])) : std::string(chosen ? "chosen" : "");
      rows += "<tr><td>" + esc(sweep.variant) + "</td><td>" + esc(format_number("%g", *run.lr)) + "</td><td>" + esc(run.status) +
              "</td><td" + (chosen ? " class=\"best\"" : "") + ">" + loss + "</td><td>" + gap + "</td><td>" +
              (sweep.compare_flops > 0 ? esc(format_flops(sweep.compare_flops)) : "—") + "</td></tr>";
    }
    c.series.push_back(std::move(s));
  }
  const std::string table = "<table id=\"table-lr-sweep\"><tr><th>variant</th><th>peak lr</th><th>status</th><th>mean loss</th>"
                            "<th>vs chosen</th><th>compared at FLOPs</th></tr>" + rows + "</table>";
  return "<section><h2>Learning-rate sweeps</h2>" +
         figure(render_line_chart(c),
                "<b>Final loss against the peak learning rate.</b> One line per swept variant, one point per learning "
                "rate: its mean validation loss at the sweep's equal-compute point (table below), on a log₁₀ lr axis.") +
         figure(table,
                "Every other plot and table compares each swept variant at its <b>chosen</b> learning rate: the lowest "
                "mean validation loss (mean over the seeds" + std::string(any_seeded(d) ? ", their min–max in small print" : "") +
                ") at the equal-compute point, the most training FLOPs every evaluated learning rate of the sweep has "
                "reached (its final evaluation once all have finished: a learning rate does not change a step's cost). "
                "Equal losses go to the smaller learning rate. A chosen value at the edge of the sweep means the best "
                "learning rate may lie outside it.") +
         "</section>\n";
}

std::string domain_section(const ReportData& d) {
  if (d.domains.empty()) return "";
  std::string o = "<section><h2>Per-domain validation loss</h2>" + html_legend(d, false) + "<div class=\"grid-figures\">";
  for (const auto& domain : d.domains) {
    LineChart c{svg_id("plot-domain", domain), domain, d.x_axis == XAxis::kFlops ? "training FLOPs" : "extra compute, %",
                "validation loss", {}, zero_line(d), "", 320, 260, Legend::kHide};
    if (auto s = dense_series(d, &domain)) c.series.push_back(std::move(*s));
    for (size_t i = 0; i < d.variants.size(); ++i) add_variant_series(c.series, d.variants[i], i, &domain);
    o += "<figure>" + render_line_chart(c) + "</figure>";
  }
  return o + "</div><figcaption>The same curves per validation domain (same axes and colours as above" +
         std::string(any_seeded(d) ? "; thin lines: the seeds' own runs" : "") +
         "). A variant that wins on average but loses on one domain shows it here.</figcaption></section>\n";
}

// A table cell: the value (with seeds the mean over them), then in small print the seeds' min–max and
// the difference to the baseline (with seeds the mean paired difference and its min–max).
std::string loss_cell(const std::optional<double>& v, const std::optional<Spread>& spread, const std::optional<double>& delta,
                      const std::optional<Spread>& delta_spread, bool best, bool baseline) {
  std::string o = std::string("<td") + (best ? " class=\"best\"" : "") + ">" + (v ? format_number("%.4f", *v) : "—");
  if (v && spread && spread->n > 1) o += "<small class=\"spread\">" + esc(format_loss_range(*spread)) + "</small>";
  if (v && delta && !baseline) {
    o += "<small>" + esc(format_delta(*delta));
    if (delta_spread && delta_spread->n > 1) o += " (" + esc(format_delta_range(*delta_spread)) + ")";
    o += "</small>";
  }
  return o + "</td>";
}

std::string loss_table(const ReportData& d) {
  if (d.domains.empty()) return "";
  const std::vector<SummaryRow> rows = summary_rows(d);
  const bool has_base = d.find(kBaselineVariant) != nullptr, seeded = any_seeded(d);
  const size_t cols = d.domains.size() + 1;
  auto value = [&](const SummaryRow& r, size_t c) { return c < d.domains.size() ? r.domain[c] : r.mean; };
  std::vector<std::optional<double>> best(cols);
  for (const auto& r : rows)
    for (size_t c = 0; c < cols; ++c)
      if (auto v = value(r, c); v && (!best[c] || *v < *best[c])) best[c] = v;
  const bool study = d.x_axis == XAxis::kExtraComputePercent;
  std::string o = "<section><h2>Final validation loss</h2><table id=\"table-final-loss\"><tr><th>variant</th>" +
                  std::string(seeded ? "<th>seeds</th>" : "") +
                  std::string(study ? "<th>compute spent</th><th>x position</th>" : "<th>FLOPs</th>");
  for (const auto& domain : d.domains) o += "<th>" + esc(domain) + "</th>";
  o += "<th>mean</th></tr>";
  for (const SummaryRow& r : rows) {
    o += "<tr><td>" + esc(r.variant) + "</td>";
    if (seeded)
      o += "<td>" + (r.seeds_listed == 0 ? std::string("—") : r.seeds == r.seeds_listed ? std::to_string(r.seeds)
                                                            : std::to_string(r.seeds) + " of " + std::to_string(r.seeds_listed)) +
           "</td>";
    if (study) o += "<td>" + (r.spent ? esc(format_spent(*r.spent)) : "—") + "</td>";
    o += "<td>" + (r.x ? esc(format_x(d, *r.x)) : "—") + "</td>";
    for (size_t c = 0; c < cols; ++c) {
      const bool domain = c < d.domains.size();
      const std::optional<double> v = value(r, c);
      o += loss_cell(v, domain ? r.domain_spread[c] : r.mean_spread, domain ? r.domain_delta[c] : r.delta,
                     domain ? r.domain_delta_spread[c] : r.delta_spread, v && best[c] && *v == *best[c],
                     r.variant == kBaselineVariant);
    }
    o += "</tr>";
  }
  std::string caption = "Loss at each run's last evaluation (nats/token); the best value per column is highlighted.";
  if (has_base) caption += std::string(" The small signed number is the difference to ") + kBaselineVariant + " (negative = better).";
  if (seeded)
    caption += std::string(" With seeds, each value is the mean over the seeds (<i>seeds</i>: how many, of those listed, "
                           "have reached that evaluation), the small range under it the lowest and highest seed, and the "
                           "difference is paired by seed: each seed's run against ") +
               kBaselineVariant + "'s run with the same seed (the same data order), shown as the mean difference and, in "
               "brackets, its lowest and highest. A difference whose bracket holds both signs is within the seed-to-seed noise.";
  caption += study ? " <i>Compute spent</i> is the run's own training FLOPs as % of the dense pretraining FLOPs; "
                     "<i>x position</i> is where its last point sits on the plots (dense FLOPs already in its start model "
                     "+ compute spent − 100 %), so an MoE from scratch that spent 100 % sits at +0 %."
                   : " The FLOPs column is the run's training compute at its last evaluation.";
  caption += " Runs that have not finished are compared at the compute they reached.";
  return o + "</table><figcaption>" + caption + "</figcaption></section>\n";
}

// A heatmap of expert loads, one row per layer or domain: each share × the row's expert count, so 1
// (white) is an even load whatever the number of experts.
Heatmap balance_heatmap(std::string id, std::string title, std::vector<std::string> row_labels,
                        const std::vector<std::vector<double>>& shares) {
  Heatmap m{std::move(id), std::move(title), "expert", "", std::move(row_labels), {}, {}, 1.0, 40};
  size_t experts = 0;
  for (const auto& row : shares) experts = std::max(experts, row.size());
  m.cell = experts <= 16 ? 40 : std::max(10, int(640 / experts));
  for (size_t e = 0; e < experts; ++e) m.col_labels.push_back(std::to_string(e));
  for (const auto& row : shares) {
    std::vector<double> scaled(experts, 0.0);
    for (size_t e = 0; e < row.size(); ++e) scaled[e] = row[e] * double(row.size());
    m.values.push_back(std::move(scaled));
  }
  return m;
}

std::string load_section(const ReportData& d) {
  std::string maps;
  for (const auto& v : d.variants) {
    if (!v.is_moe() || v.final_load.empty()) continue;
    std::vector<std::string> layers;
    std::vector<std::vector<double>> shares;
    for (const auto& l : v.final_load) {
      layers.push_back("layer " + std::to_string(l.layer));
      shares.push_back(l.load);
    }
    maps += "<figure>" + render_heatmap(balance_heatmap(svg_id("plot-load", v.name), v.name + heatmap_seed(v), layers, shares)) +
            "</figure>";
  }
  if (maps.empty()) return "";
  return "<section><h2>Expert load at the end of training</h2><div class=\"grid-figures\">" + maps +
         "</div><figcaption>Rows are MoE layers, columns experts; each cell is the share of routed tokens the expert "
         "received at the final evaluation (all validation domains) times the number of experts, so 1 (white) is a "
         "perfectly even load, orange/red an overloaded expert (2 = twice its share) and blue an under-used one. A "
         "column that is blue in every layer is an expert that learned little." +
         std::string(any_seeded(d) ? " With seeds, the first seed's run is shown: expert numbers do not correspond "
                                     "across seeds." : "") +
         "</figcaption></section>\n";
}

std::string routing_section(const ReportData& d) {
  std::string maps;
  for (const auto& v : d.variants) {
    if (!v.routing || v.routing->domains.empty()) continue;
    const DomainRouting& r = *v.routing;
    const std::string title = v.name + heatmap_seed(v) + " · layer " + std::to_string(r.layer) + " · step " + std::to_string(r.step);
    maps += "<figure>" + render_heatmap(balance_heatmap(svg_id("plot-routing", v.name), title, r.domains, r.load)) +
            "</figure>";
  }
  if (maps.empty()) return "";
  return "<section><h2>Routing by domain</h2><div class=\"grid-figures\">" + maps +
         "</div><figcaption>From the newest <code>upcycle analyze</code> result of each MoE run, the middle MoE layer: "
         "rows are validation domains, columns experts, colour = share of that domain's tokens routed to the expert "
         "× number of experts (1 = even). Rows that differ mean experts specialise by domain; identical rows mean "
         "routing ignores the domain." +
         std::string(any_seeded(d) ? " With seeds, the first seed's run is shown." : "") + "</figcaption></section>\n";
}

std::string specialization_section(const ReportData& d) {
  struct Metric {
    const char* key;
    const char* title;
    std::optional<double> AnalysisPoint::*field;
  };
  const Metric metrics[] = {{"expert-similarity", "expert similarity (neuron-matched)", &AnalysisPoint::expert_similarity_mean},
                            {"dense-similarity", "similarity to the dense FFN (matched)", &AnalysisPoint::dense_similarity_mean},
                            {"domain-specialization", "domain specialisation (TV)", &AnalysisPoint::domain_specialization}};
  bool any = false;
  for (const auto& v : d.variants) any = any || !v.analysis.empty();
  if (!any) return "";
  const int w = 330, h = 270;
  std::string o = "<svg id=\"plot-specialization\" class=\"chart-group\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                  std::to_string(3 * w) + "\" height=\"" + std::to_string(h) + "\" viewBox=\"0 0 " + std::to_string(3 * w) +
                  " " + std::to_string(h) + "\">";
  for (size_t m = 0; m < 3; ++m) {
    LineChart c{"plot-specialization-" + std::string(metrics[m].key), metrics[m].title,
                d.x_axis == XAxis::kFlops ? "training FLOPs" : "extra compute, %", metrics[m].key, {}, zero_line(d), "", w, h,
                Legend::kHide};
    c.y_label = "";
    for (size_t i = 0; i < d.variants.size(); ++i) {
      if (!d.variants[i].is_moe()) continue;
      Series s{d.variants[i].name, {}, i};
      for (const auto& p : d.variants[i].analysis)
        if (const auto& y = p.*(metrics[m].field)) s.points.push_back({p.x, *y});
      c.series.push_back(std::move(s));
    }
    std::string chart = render_line_chart(c);
    chart.insert(4, " x=\"" + std::to_string(int(m) * w) + "\" y=\"0\"");  // nest: place the panel
    o += chart;
  }
  o += "</svg>";
  return "<section><h2>Expert specialisation</h2>" + html_legend(d, true) +
         figure(o,
                "From <code>upcycle analyze</code> on each checkpoint (summary means over MoE layers). Similarities "
                "match neurons (each neuron's gate row, up row and down column; its best cosine in the other FFN), so "
                "reordering an FFN's neurons does not change them; unrelated random FFNs sit at a floor above 0 that "
                "shrinks as the hidden size grows (docs/study.md). <b>Left:</b> between different experts: upcycled experts start as copies (1) "
                "and drift apart as they specialise. <b>Middle:</b> of each expert with the dense FFN it came from "
                "(how much of the dense model survives). <b>Right:</b> how differently the domains are routed "
                "(total-variation distance of each domain's expert load from the mean; 0 = routing ignores the "
                "domain)." +
                    std::string(any_seeded(d) ? " With seeds, each line is the mean over the seeds." : "")) +
         "</section>\n";
}

// Every run of the study under its own name: the variants' in their order (one per seed with seeds),
// then each learning-rate sweep's runs by increasing lr, the chosen one included
// ("<variant>/lr-<lr>[ · seed S]", where its run directory is).
template <class Visit>
void for_each_run(const ReportData& d, Visit visit) {
  const auto runs_of = [&](const Variant& v) {
    if (v.seeded())
      for (const auto& run : v.seed_runs) visit(run);
    else
      visit(v);
  };
  for (const auto& v : d.variants)
    if (v.sweep.empty()) runs_of(v);
  for (const LrSweep& sweep : d.sweeps)
    for (const Variant& run : sweep.runs) runs_of(run);
}

std::string details_row(const Variant& v) {
  return "<tr><td>" + esc(v.name) + "</td><td>" + esc(v.kind) + "</td><td class=\"status-" + esc(v.status) + "\">" + esc(v.status) +
         "</td><td>" + std::to_string(v.steps_done) + (v.planned_steps > 0 ? " / " + std::to_string(v.planned_steps) : "") +
         "</td><td>" + grouped(v.tokens_done) + "</td><td>" + sci(v.train_flops_per_token) + "</td><td>" + sci(v.budget_flops) +
         "</td><td>" + sci(v.flops_done) + "</td></tr>";
}

std::string details_section(const ReportData& d) {
  std::string o =
      "<section><h2>Run details</h2><table id=\"table-runs\"><tr><th>variant</th><th>kind</th><th>status</th><th>steps</th>"
      "<th>tokens</th><th>train FLOPs/token</th><th>budget FLOPs</th><th>run FLOPs</th></tr>";
  if (d.dense_pretrain) o += details_row(*d.dense_pretrain);
  for_each_run(d, [&](const Variant& run) { o += details_row(run); });
  return o + "</table><figcaption>Steps done / planned; budget = planned steps × tokens per step × training FLOPs per "
             "token; run FLOPs = what the run has spent so far.</figcaption></section>\n";
}

// One collapsible block per run with its commands, full width, one flag per line.
std::string reproduce_section(const ReportData& d) {
  std::string blocks;
  auto block = [&](const std::string& name, const std::vector<std::string>& commands) {
    if (commands.empty()) return;
    std::string text;
    for (size_t i = 0; i < commands.size(); ++i) text += (i ? "\n\n" : "") + shell_lines(commands[i]);
    blocks += "<details><summary>" + esc(name) + "</summary><pre>" + esc(text) + "</pre></details>";
  };
  block(kDensePretrainName, d.dense_commands);
  for_each_run(d, [&](const Variant& run) { block(run.name, run.commands); });
  if (blocks.empty()) return "";
  return "<section id=\"reproduce\"><h2>Reproduce</h2><p class=\"note\">The equivalent command lines from "
         "<code>study.json</code>, in order; click a name to open them.</p>" +
         blocks + "</section>\n";
}

}  // namespace

std::string svg_id(std::string_view prefix, std::string_view name) {
  std::string id(prefix);
  id += '-';
  for (char c : name) id += std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ? c : '-';
  return id;
}

std::string render_html_report(const ReportData& d, const PageOptions& options) {
  std::string page = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
                     "content=\"width=device-width, initial-scale=1\"><title>" +
                     esc(options.title.empty() ? "upcycle report: " + d.name : options.title) + "</title><style>" + kReportCss +
                     "</style></head><body><main>\n";
  page += header(d, options);
  page += loss_section(d) + plan_section(d) + domain_section(d) + loss_table(d) + sweep_section(d) + load_section(d) + routing_section(d) +
          specialization_section(d) + details_section(d) + reproduce_section(d);
  return page + "</main></body></html>\n";
}

}  // namespace upcycle::report
