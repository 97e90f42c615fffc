// `--backend` and `--threads`, declared once for every command that computes, so their spelling,
// choices (from the backend registry), help and validation cannot drift between commands.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cli/options.h"

namespace upcycle::cli {

// What a thread count changes in a command's output, for the --threads help line.
inline constexpr std::string_view kThreadsBitwisePerCount =
    "results are bit-identical for a given count, and may differ in the last bits between counts";

// --backend NAME, restricted to the registered backends, defaulting to what *backend holds ("cpu").
void bind_backend_flag(OptionSet& set, std::string* backend);
// --threads N (0: all cores); `effect` says what the count changes.
void bind_threads_flag(OptionSet& set, int64_t* threads, std::string_view effect = kThreadsBitwisePerCount);
// Both, for commands that run the model.
void bind_runtime_flags(OptionSet& set, std::string* backend, int64_t* threads);
// "[--backend cpu|cpu-bf16|ref] [--threads N]" for usage lines.
std::string runtime_flags_usage();
// Validates --threads (>= 0, else Error) and sets the OpenMP thread count when it is positive.
void apply_threads(int64_t threads);

}  // namespace upcycle::cli
