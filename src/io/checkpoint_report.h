// What `upcycle inspect` reports about a checkpoint directory, as one JSON document: architecture,
// routing semantics, parameter counts, dtypes, files, and every problem found by matching the
// tensors against config.json. Built from headers alone — no tensor data is read. The text view
// is rendered from the same JSON so the two can never disagree.
#pragma once

#include <filesystem>
#include <string>

#include "core/json.h"

namespace upcycle {

enum class TensorListing { kOmit, kInclude };

// Throws Error when config.json or the weights cannot be read at all; problems that still allow a
// description (missing, unexpected or mis-shaped tensors, …) go into report["problems"].
Json inspect_checkpoint(const std::filesystem::path& dir, TensorListing listing);
std::string render_report_text(const Json& report);

}  // namespace upcycle
