// See figure_export.h.
#include "report/figure_export.h"

#include <system_error>

#include "core/error.h"
#include "core/file_util.h"
#include "report/html_report_style.h"

namespace upcycle::report {
namespace {

// The stylesheet's chart rules ("svg …" lines): the part of the page's look a figure needs.
std::string chart_styles() {
  std::string rules;
  const std::string_view css = kReportCss;
  for (size_t start = 0; start < css.size();) {
    size_t end = css.find('\n', start);
    if (end == std::string_view::npos) end = css.size();
    const std::string_view line = css.substr(start, end - start);
    if (line.starts_with("svg ")) rules.append(line).push_back('\n');
    start = end + 1;
  }
  return rules;
}

// The end (one past "</svg>") of the <svg> element starting at `start`, counting nested <svg>s.
size_t svg_end(std::string_view page, size_t start) {
  int depth = 0;
  for (size_t p = start + 1;;) {
    const size_t open = page.find("<svg", p), close = page.find("</svg>", p);
    if (close == std::string_view::npos) throw Error("report page: an <svg> is not closed");
    if (open != std::string_view::npos && open < close) {
      ++depth;
      p = open + 4;
    } else if (depth-- == 0) {
      return close + 6;
    } else {
      p = close + 6;
    }
  }
}

}  // namespace

std::vector<StandaloneFigure> standalone_figures(std::string_view page) {
  static const std::string styles = chart_styles();
  std::vector<StandaloneFigure> figures;
  for (size_t start = page.find("<svg"); start != std::string_view::npos; start = page.find("<svg", start)) {
    const size_t end = svg_end(page, start);
    const size_t tag_end = page.find('>', start);
    const std::string_view tag = page.substr(start, tag_end + 1 - start);
    if (const size_t id = tag.find(" id=\""); id != std::string_view::npos) {
      const size_t from = id + 5, to = tag.find('"', from);
      StandaloneFigure f{std::string(tag.substr(from, to - from)), std::string(tag)};
      f.svg += "<style>\n" + styles + "</style><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>";
      f.svg.append(page.substr(tag_end + 1, end - tag_end - 1)).push_back('\n');
      figures.push_back(std::move(f));
    }
    start = end;
  }
  return figures;
}

std::vector<std::filesystem::path> write_standalone_figures(std::string_view page, const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create the figures directory: " + ec.message() + " (" + dir.string() + ")");
  std::vector<std::filesystem::path> written;
  for (const StandaloneFigure& f : standalone_figures(page)) {
    const std::filesystem::path path = dir / (f.id + ".svg");
    write_text_file_atomically(path, "figure", f.svg);
    written.push_back(path);
  }
  return written;
}

}  // namespace upcycle::report
