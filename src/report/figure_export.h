// Standalone SVG files cut from the report page, for documents that cannot embed the HTML page (a
// results page on a code host links them as images). Each top-level <svg id="…"> of the page becomes
// one file with the page's chart styles inlined and a white background, so it looks the same outside
// the page. Figures whose legend is HTML on the page (plot-domain-*, plot-specialization) keep their
// series' names only as data-name attributes.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace upcycle::report {

struct StandaloneFigure {
  std::string id;   // the svg's id: plot-loss-vs-compute, plot-lr-sweep, …
  std::string svg;  // a complete SVG document
};

// Every top-level <svg> of `page` that has an id, in page order (nested panels stay inside theirs).
std::vector<StandaloneFigure> standalone_figures(std::string_view page);

// Writes each figure as DIR/<id>.svg (DIR created; files of the same name replaced atomically).
// Returns the paths written.
std::vector<std::filesystem::path> write_standalone_figures(std::string_view page, const std::filesystem::path& dir);

}  // namespace upcycle::report
