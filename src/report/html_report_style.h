// The report page's stylesheet, inlined into <head>: neutral greys, one accent, tabular numbers;
// chart text classes (tick, label, title, legend-text, cell-text) are styled here, not per element.
#pragma once

namespace upcycle::report {

inline constexpr const char* kReportCss = R"CSS(
:root { --ink: #1f2328; --muted: #57606a; --rule: #d0d7de; --soft: #f6f8fa; --accent: #0072B2; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 28px 32px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 40px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--rule); }
p.meta { color: var(--muted); margin: 0 0 12px; font-size: 13px; }
p.finding { background: #eef6fc; border-left: 4px solid var(--accent); padding: 10px 14px; margin: 14px 0; }
figure { margin: 12px 0 18px; }
figcaption { color: var(--muted); font-size: 13px; max-width: 860px; margin-top: 4px; }
.grid-figures { display: flex; flex-wrap: wrap; gap: 8px 18px; }
.grid-figures figure { margin: 4px 0; }
.legend-html { display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 13px; margin: 6px 0; }
.legend-html span.swatch { display: inline-block; width: 22px; height: 4px; vertical-align: middle; margin-right: 6px; border-radius: 2px; }
table { border-collapse: collapse; font-size: 13.5px; margin: 8px 0 4px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 12px; border-bottom: 1px solid var(--rule); text-align: right; vertical-align: top; white-space: nowrap; }
th.text { text-align: left; }
th { background: var(--soft); font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
td.best { background: #e3f1e8; font-weight: 700; }
td small, .delta { display: block; color: var(--muted); font-weight: 400; font-size: 11.5px; }
ul.variants { margin: 4px 0 10px; padding-left: 22px; }
ul.variants li { margin: 2px 0; }
ul.variants .kind { display: inline-block; font-size: 11.5px; color: var(--muted); border: 1px solid var(--rule); border-radius: 8px; padding: 0 7px; line-height: 17px; }
p.note { color: var(--muted); font-size: 13px; margin: 4px 0 8px; }
details { border: 1px solid var(--rule); border-radius: 6px; margin: 6px 0; background: #fff; }
details summary { cursor: pointer; padding: 6px 12px; font-weight: 600; background: var(--soft); border-radius: 6px; }
details[open] summary { border-bottom: 1px solid var(--rule); border-radius: 6px 6px 0 0; }
details pre { margin: 0; padding: 10px 14px; white-space: pre-wrap; word-break: break-all; font-size: 12px; line-height: 1.45; color: #24292f; }
.status-pending { color: #9a6700; } .status-running { color: var(--accent); } .status-done { color: #1a7f37; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
svg .tick { font-size: 11.5px; fill: #444; }
svg .label { font-size: 12.5px; fill: #222; }
svg .title { font-size: 13.5px; font-weight: 600; fill: #222; }
svg .note { font-size: 11px; fill: #666; }
svg .legend-text { font-size: 12.5px; fill: #222; }
svg .grid line { stroke: #eaeef2; stroke-width: 1; }
svg .axis line { stroke: #6e7781; stroke-width: 1; }
svg line.vline { stroke: #8c959f; stroke-width: 1.2; stroke-dasharray: 5 4; }
svg polyline.series { stroke-width: 2.2; stroke-linejoin: round; stroke-linecap: round; }
svg polyline.series.seed { stroke-width: 1; stroke-opacity: 0.4; }
svg polyline.series.fit { stroke-width: 1.6; stroke-dasharray: 6 4; }
svg line.vline.mark { stroke: #57606a; stroke-dasharray: 2 3; }
svg .cell { stroke: #fff; stroke-width: 1; }
svg .cell-text { font-size: 10.5px; fill: #222; }
svg .cell-text.dark { fill: #fff; }
.empty { color: var(--muted); font-style: italic; }
)CSS";

}  // namespace upcycle::report
