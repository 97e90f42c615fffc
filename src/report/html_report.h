// The `upcycle report` page: one self-contained HTML file (inline CSS and SVG, no JavaScript, no
// external URL) that opens offline. Every plot is a <figure> with an <svg> of stable id
// (plot-loss-vs-compute, plot-loss-vs-tokens, plot-domain-<domain>, plot-lr-sweep, plot-load-<variant>,
// plot-routing-<variant>, plot-specialization; tables table-token-view, table-final-loss,
// table-lr-sweep) and a caption saying how to read it; the commands go in a Reproduce section of
// <details> blocks (one per run, a flag per line). Layout and wording only; the numbers come
// from run_data and summary_table.
#pragma once

#include <string>
#include <string_view>

#include "report/run_data.h"

namespace upcycle::report {

struct PageOptions {
  std::string title;      // empty: "upcycle study: <name>"
  std::string generated;  // the date line, e.g. "2026-12-04 10:00 UTC"
};

std::string render_html_report(const ReportData& data, const PageOptions& options);

// "<prefix>-<name>" with every character outside [A-Za-z0-9_-] replaced by '-'.
std::string svg_id(std::string_view prefix, std::string_view name);

}  // namespace upcycle::report
