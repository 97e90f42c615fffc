// --backend and --threads for every command that computes (see runtime_flags.h).
#include "cli/runtime_flags.h"

#include <omp.h>

#include "backend/backend.h"
#include "core/error.h"

namespace upcycle::cli {

void bind_backend_flag(OptionSet& set, std::string* backend) {
  std::string help = "compute backend:";
  for (const backend::BackendInfo& info : backend::registered_backends())
    help += "\n        " + std::string(info.name) + ": " + std::string(info.summary);
  set.add_choice("backend", backend::backend_names(), help, backend);
}

void bind_threads_flag(OptionSet& set, int64_t* threads, std::string_view effect) {
  set.add("threads", "N", "worker threads (0: all cores); " + std::string(effect), threads);
}

void bind_runtime_flags(OptionSet& set, std::string* backend, int64_t* threads) {
  bind_backend_flag(set, backend);
  bind_threads_flag(set, threads);
}

std::string runtime_flags_usage() {
  std::string names;
  for (const std::string& name : backend::backend_names()) names += (names.empty() ? "" : "|") + name;
  return "[--backend " + names + "] [--threads N]";
}

void apply_threads(int64_t threads) {
  if (threads < 0) throw Error("--threads must be 0 (all cores) or positive, got " + std::to_string(threads));
  if (threads > 0) omp_set_num_threads(static_cast<int>(threads));
}

}  // namespace upcycle::cli
