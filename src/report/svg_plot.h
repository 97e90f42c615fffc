// Small SVG chart writers for `upcycle report`: line charts and heatmaps as inline <svg> strings.
// Nice axis ticks, linear coordinate mapping, a colour-blind-safe palette (Okabe–Ito) and XML
// escaping live here so the page code only describes what to draw. Non-goals: interactivity,
// log axes, text measurement (labels are sized by a fixed per-character estimate).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace upcycle::report {

// Escapes & < > " ' for text and attribute values.
std::string xml_escape(std::string_view text);

// Round-number axis ticks covering [lo, hi]: step ∈ {1, 2, 5}·10^k chosen for about `target` intervals;
// `lo`/`hi` are widened to multiples of the step, except that data overshooting a multiple by under 2 %
// of a step (100.1 % of a budget) does not add a whole empty step. An empty range is widened first.
struct Ticks {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> values;
};
Ticks nice_ticks(double lo, double hi, int target = 5);
// A tick value printed with as many decimals as the step needs ("0.1" steps → one decimal).
std::string format_tick(double value, double step);

// Maps the domain [d0, d1] linearly onto the range [r0, r1] (r1 < r0 for an SVG y axis).
struct LinearScale {
  double d0 = 0, d1 = 1, r0 = 0, r1 = 1;
  double operator()(double v) const { return d1 == d0 ? (r0 + r1) / 2 : r0 + (v - d0) * (r1 - r0) / (d1 - d0); }
};

// Okabe–Ito colours, in an order that keeps the first series maximally distinct.
const std::string& palette_colour(size_t index);

enum class Legend { kShow, kHide };

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in this order
  size_t colour = 0;                              // palette index (same variant → same colour everywhere)
  std::string stroke;                             // a fixed colour instead (a reference line), circle markers
  // One seed's run behind a variant's mean curve: a thin translucent line without markers, not in the
  // legend (class "series seed").
  bool faint = false;
  // A fitted law's prediction (`upcycle plan`): a dashed line without markers (class "series fit").
  bool fitted = false;
};

// A labelled dashed vertical line (a predicted crossover, where the data end).
struct Mark {
  double x = 0;
  std::string label;
};

struct LineChart {
  std::string id, title, x_label, y_label;
  std::vector<Series> series;
  std::optional<double> vline;  // a dashed vertical reference line at this x
  std::string vline_label;
  int width = 760, height = 400;
  Legend legend = Legend::kShow;
  std::vector<Mark> marks;  // further labelled dashed vertical lines, labels stacked from the top
};
// <svg id=…> with axes, grid, one <polyline class="series"> + markers per non-empty series (faint
// series: <polyline class="series seed">, no markers, drawn first so the means lie on top; fitted
// series: <polyline class="series fit">, dashed, no markers).
std::string render_line_chart(const LineChart& chart);

// A matrix coloured on a diverging scale around `centre` (log2 ratio: 2× and ½× are equally strong),
// each cell a <rect class="cell">, values printed in the cells when they fit.
struct Heatmap {
  std::string id, title, x_label, y_label;
  std::vector<std::string> row_labels, col_labels;
  std::vector<std::vector<double>> values;  // rows × cols
  double centre = 1.0;
  int cell = 40;  // cell side, pixels
};
std::string render_heatmap(const Heatmap& map);

}  // namespace upcycle::report
