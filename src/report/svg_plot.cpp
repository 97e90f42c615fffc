// SVG line charts and heatmaps (see svg_plot.h). Coordinates are printed with one decimal: enough
// for a screen and keeps the page small.
#include "report/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace upcycle::report {
namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string fixed(double v, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  if (s.starts_with("-") && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);  // "-0.0" → "0.0"
  return s;
}

// Large axes (FLOPs) print mantissas and move the power of ten into the axis label.
struct AxisFormat {
  double divisor = 1;
  std::string suffix;
};
AxisFormat axis_format(const Ticks& t) {
  double big = std::max(std::fabs(t.lo), std::fabs(t.hi));
  if (big < 1e5) return {};
  int exp3 = int(std::floor(std::log10(big) / 3)) * 3;
  return {std::pow(10.0, exp3), " (×1e" + std::to_string(exp3) + ")"};
}

std::string text(double x, double y, std::string_view s, std::string_view cls, std::string_view anchor = "middle",
                  std::string_view extra = "") {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" class=\"" + std::string(cls) + "\" text-anchor=\"" +
         std::string(anchor) + "\"" + std::string(extra) + ">" + xml_escape(s) + "</text>";
}

// Marker shapes vary with the series so lines stay apart in greyscale too.
std::string marker(size_t index, double x, double y, const std::string& colour) {
  const std::string fill = " fill=\"" + colour + "\"";
  switch (index % 4) {
    case 1:
      return "<rect x=\"" + num(x - 3.2) + "\" y=\"" + num(y - 3.2) + "\" width=\"6.4\" height=\"6.4\"" + fill + "/>";
    case 2:
      return "<path d=\"M" + num(x) + " " + num(y - 4.5) + "L" + num(x + 4.5) + " " + num(y) + "L" + num(x) + " " +
             num(y + 4.5) + "L" + num(x - 4.5) + " " + num(y) + "Z\"" + fill + "/>";
    case 3:
      return "<path d=\"M" + num(x) + " " + num(y - 4.5) + "L" + num(x + 4.2) + " " + num(y + 3) + "L" + num(x - 4.2) +
             " " + num(y + 3) + "Z\"" + fill + "/>";
    default:
      return "<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"3.4\"" + fill + "/>";
  }
}

std::string shorten(const std::string& s, size_t max_chars) {
  return s.size() <= max_chars ? s : s.substr(0, max_chars - 1) + "…";
}

}  // namespace

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Ticks nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (lo > hi) std::swap(lo, hi);
  if (hi == lo) {
    double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  const double raw = (hi - lo) / std::max(target, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  // Tick k sits at k·step; the tolerance keeps 0.30000000004 (float drift) or 100.1 (a run a hair over
  // its budget) from adding a whole empty step: such points sit at most 2 % of a step past the axis end.
  const long long k0 = (long long)std::floor(lo / step + 0.02);
  const long long k1 = (long long)std::ceil(hi / step - 0.02);
  Ticks t;
  t.step = step;
  t.lo = double(k0) * step;
  t.hi = double(k1) * step;
  for (long long k = k0; k <= k1; ++k) t.values.push_back(double(k) * step);
  return t;
}

std::string format_tick(double value, double step) {
  int decimals = std::max(0, -int(std::floor(std::log10(step) + 1e-9)));
  return fixed(value, decimals);
}

const std::string& palette_colour(size_t index) {
  static const std::vector<std::string> kColours{"#0072B2", "#E69F00", "#009E73", "#D55E00",
                                                 "#CC79A7", "#56B4E9", "#000000", "#F0E442"};
  return kColours[index % kColours.size()];
}

std::string render_line_chart(const LineChart& c) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : c.series)
    for (auto [x, y] : s.points) {
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (c.vline) x0 = std::min(x0, *c.vline), x1 = std::max(x1, *c.vline);
  for (const Mark& m : c.marks) x0 = std::min(x0, m.x), x1 = std::max(x1, m.x);
  const Ticks tx = nice_ticks(x0, x1, c.width >= 600 ? 8 : 5), ty = nice_ticks(y0, y1, c.height >= 300 ? 6 : 4);
  const double left = 66, right = c.width - (c.legend == Legend::kShow ? 196 : 18), top = c.title.empty() ? 14 : 34,
               bottom = c.height - 46;
  const LinearScale sx{tx.lo, tx.hi, left, right}, sy{ty.lo, ty.hi, bottom, top};
  const AxisFormat fx = axis_format(tx), fy = axis_format(ty);

  std::string o = "<svg id=\"" + xml_escape(c.id) + "\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                  std::to_string(c.width) + "\" height=\"" + std::to_string(c.height) + "\" viewBox=\"0 0 " +
                  std::to_string(c.width) + " " + std::to_string(c.height) + "\" role=\"img\">";
  o += "<title>" + xml_escape(c.title.empty() ? c.y_label : c.title) + "</title>";
  if (!c.title.empty()) o += text(left, 20, c.title, "title", "start");
  o += "<g class=\"grid\">";
  for (double v : tx.values) o += "<line x1=\"" + num(sx(v)) + "\" y1=\"" + num(top) + "\" x2=\"" + num(sx(v)) + "\" y2=\"" + num(bottom) + "\"/>";
  for (double v : ty.values) o += "<line x1=\"" + num(left) + "\" y1=\"" + num(sy(v)) + "\" x2=\"" + num(right) + "\" y2=\"" + num(sy(v)) + "\"/>";
  o += "</g><g class=\"axis\">";
  o += "<line x1=\"" + num(left) + "\" y1=\"" + num(bottom) + "\" x2=\"" + num(right) + "\" y2=\"" + num(bottom) + "\"/>";
  o += "<line x1=\"" + num(left) + "\" y1=\"" + num(top) + "\" x2=\"" + num(left) + "\" y2=\"" + num(bottom) + "\"/>";
  for (double v : tx.values) o += text(sx(v), bottom + 16, format_tick(v / fx.divisor, tx.step / fx.divisor), "tick");
  for (double v : ty.values) o += text(left - 6, sy(v) + 4, format_tick(v / fy.divisor, ty.step / fy.divisor), "tick", "end");
  o += text((left + right) / 2, c.height - 10, c.x_label + fx.suffix, "label");
  o += text(14, (top + bottom) / 2, c.y_label + fy.suffix, "label", "middle",
            " transform=\"rotate(-90 14 " + num((top + bottom) / 2) + ")\"");
  o += "</g>";
  if (c.vline) {
    o += "<line class=\"vline\" x1=\"" + num(sx(*c.vline)) + "\" y1=\"" + num(top) + "\" x2=\"" + num(sx(*c.vline)) +
         "\" y2=\"" + num(bottom) + "\"/>";
    if (!c.vline_label.empty()) o += text(sx(*c.vline) + 4, top + 12, c.vline_label, "note", "start");
  }
  for (size_t i = 0; i < c.marks.size(); ++i) {
    const double mx = sx(c.marks[i].x);
    o += "<line class=\"vline mark\" x1=\"" + num(mx) + "\" y1=\"" + num(top) + "\" x2=\"" + num(mx) + "\" y2=\"" + num(bottom) + "\"/>";
    // Labels that would run past the plot area go to the left of their line (≈ 6.5 px per character).
    const bool left_of = mx + 4 + 6.5 * double(c.marks[i].label.size()) > right;
    o += text(left_of ? mx - 4 : mx + 4, top + 12 + 14 * double(i + (c.vline_label.empty() ? 0 : 1)), c.marks[i].label, "note",
              left_of ? "end" : "start");
  }
  for (const bool faint : {true, false})
    for (const Series& s : c.series) {
      if (s.points.empty() || s.faint != faint) continue;
      const std::string& colour = s.stroke.empty() ? palette_colour(s.colour) : s.stroke;
      const size_t shape = s.stroke.empty() ? s.colour : 0;
      const std::string cls = s.faint ? "series seed" : s.fitted ? "series fit" : "series";
      o += "<g class=\"" + cls + "\" data-name=\"" + xml_escape(s.name) + "\"><polyline class=\"" + cls +
           "\" fill=\"none\" stroke=\"" + colour + "\" points=\"";
      for (size_t p = 0; p < s.points.size(); ++p) o += (p ? " " : "") + num(sx(s.points[p].first)) + "," + num(sy(s.points[p].second));
      o += "\"/>";
      if (!s.faint && !s.fitted)
        for (auto [x, y] : s.points) o += marker(shape, sx(x), sy(y), colour);
      o += "</g>";
    }
  if (c.legend == Legend::kShow) {
    o += "<g class=\"legend\">";
    double ly = top + 8;
    for (const auto& s : c.series) {
      if (s.faint) continue;
      const std::string& colour = s.stroke.empty() ? palette_colour(s.colour) : s.stroke;
      const double lx = right + 16;
      o += "<line x1=\"" + num(lx) + "\" y1=\"" + num(ly) + "\" x2=\"" + num(lx + 24) + "\" y2=\"" + num(ly) +
           "\" stroke=\"" + colour + "\" stroke-width=\"2.2\"" + (s.fitted ? " stroke-dasharray=\"6 4\"/>" : "/>" +
           marker(s.stroke.empty() ? s.colour : 0, lx + 12, ly, colour));
      o += text(lx + 32, ly + 4, shorten(s.name, 22) + (s.points.empty() ? " (no data)" : ""), "legend-text", "start");
      ly += 22;
    }
    o += "</g>";
  }
  return o + "</svg>";
}

namespace {

// Diverging blue (below centre) – near-white – orange/red (above), by log2 ratio clamped at ±2 (4×).
std::string diverging_colour(double value, double centre) {
  double t = value <= 0 || centre <= 0 ? -1 : std::clamp(std::log2(value / centre) / 2, -1.0, 1.0);
  const double white[3] = {247, 247, 247}, cold[3] = {33, 102, 172}, hot[3] = {178, 24, 43};
  const double* end = t < 0 ? cold : hot;
  const double a = std::fabs(t);
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", int(white[0] + a * (end[0] - white[0]) + 0.5),
                int(white[1] + a * (end[1] - white[1]) + 0.5), int(white[2] + a * (end[2] - white[2]) + 0.5));
  return buf;
}

}  // namespace

std::string render_heatmap(const Heatmap& m) {
  const size_t rows = m.row_labels.size(), cols = m.col_labels.size();
  size_t label_chars = 0;
  for (const auto& r : m.row_labels) label_chars = std::max(label_chars, std::min<size_t>(r.size(), 16));
  const double left = 40 + 7.0 * double(label_chars), top = m.title.empty() ? 14 : 34;
  const double w = left + double(cols * m.cell) + 84, h = top + double(rows * m.cell) + 50;
  std::string o = "<svg id=\"" + xml_escape(m.id) + "\" class=\"heatmap\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                  num(w) + "\" height=\"" + num(h) + "\" viewBox=\"0 0 " + num(w) + " " + num(h) + "\" role=\"img\">";
  o += "<title>" + xml_escape(m.title) + "</title>";
  if (!m.title.empty()) o += text(left, 20, m.title, "title", "start");
  const bool annotate = m.cell >= 34;
  for (size_t r = 0; r < rows; ++r) {
    const double y = top + double(r * m.cell);
    o += text(left - 6, y + m.cell / 2.0 + 4, shorten(m.row_labels[r], 16), "tick", "end");
    for (size_t c = 0; c < cols; ++c) {
      const double v = r < m.values.size() && c < m.values[r].size() ? m.values[r][c] : 0;
      const double x = left + double(c * m.cell);
      o += "<rect class=\"cell\" x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + std::to_string(m.cell) +
           "\" height=\"" + std::to_string(m.cell) + "\" fill=\"" + diverging_colour(v, m.centre) + "\"><title>" +
           xml_escape(m.row_labels[r] + ", " + m.col_labels[c] + ": " + fixed(v, 3)) + "</title></rect>";
      if (annotate) {
        const bool dark = v > 0 && std::fabs(std::log2(v / m.centre)) > 1.1;
        o += text(x + m.cell / 2.0, y + m.cell / 2.0 + 4, fixed(v, 2), dark ? "cell-text dark" : "cell-text");
      }
    }
  }
  for (size_t c = 0; c < cols; ++c)
    o += text(left + double(c * m.cell) + m.cell / 2.0, top + double(rows * m.cell) + 16, m.col_labels[c], "tick");
  o += text(left + double(cols * m.cell) / 2, h - 8, m.x_label, "label");
  // Colour key: ¼× … 1 … 4× the centre.
  const double kx = left + double(cols * m.cell) + 24, ky = top, kh = std::max(double(rows * m.cell), 80.0);
  const int steps = 16;
  for (int i = 0; i < steps; ++i) {
    const double t = 1 - 2.0 * (i + 0.5) / steps;  // top = hot
    o += "<rect class=\"key\" x=\"" + num(kx) + "\" y=\"" + num(ky + kh * i / steps) + "\" width=\"14\" height=\"" +
         num(kh / steps + 0.5) + "\" fill=\"" + diverging_colour(m.centre * std::pow(2.0, 2 * t), m.centre) + "\"/>";
  }
  const std::pair<double, const char*> keys[] = {{0, "≥4×"}, {0.5, "1×"}, {1, "≤¼×"}};
  for (auto [f, label] : keys) o += text(kx + 20, ky + kh * f + 4, label, "tick", "start");
  return o + "</svg>";
}

}  // namespace upcycle::report
