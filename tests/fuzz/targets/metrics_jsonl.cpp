// Fuzz target (fuzz_targets.h): a train run directory as `upcycle report` reads it. The bytes are
// metrics.jsonl; when they hold a NUL byte, the part before it is the run's config.json (else a fixed
// valid one). load_report_data and the HTML rendering may only throw Error.
#include <string>

#include "core/error.h"
#include "report/html_report.h"
#include "report/run_data.h"
#include "../fuzz_targets.h"

namespace upcycle::fuzz {

int fuzz_metrics_jsonl(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string_view config =
      R"({"format":"upcycle-train-run","tokens_per_step":64,"flops_per_token":{"train":1000},"options":{"steps":4}})";
  if (const size_t nul = bytes.find('\0'); nul != std::string_view::npos) {
    config = bytes.substr(0, nul);
    bytes = bytes.substr(nul + 1);
  }
  write_scratch("run/config.json", config);
  write_scratch("run/metrics.jsonl", bytes);
  try {
    const report::ReportData d = report::load_report_data({scratch_dir() / "run"});
    (void)report::render_html_report(d, {"fuzz", "2026-01-01 00:00 UTC"});
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace upcycle::fuzz
