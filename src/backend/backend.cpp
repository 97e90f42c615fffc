// Backend selection by kind or by the name a user types (--backend ref|cpu|cpu-bf16).
// Invariant: every BackendKind maps to exactly one implementation; an unknown name is a user error
// (upcycle::Error), not an internal check. Non-goal: runtime discovery of optional backends.
#include "backend/backend.h"

#include <string>

#include "backend/cpu/cpu_backend.h"
#include "backend/ref/ref_backend.h"
#include "core/error.h"

namespace upcycle::backend {

std::unique_ptr<Backend> make_backend(BackendKind kind) {
  switch (kind) {
    case BackendKind::kRef:
      return std::make_unique<RefBackend>();
    case BackendKind::kCpu:
      return std::make_unique<CpuBackend>();
    case BackendKind::kCpuBF16:
      return std::make_unique<CpuBackend>(MatmulPrecision::kBF16);
  }
  UPCYCLE_CHECK(false, "unhandled BackendKind");
}

BackendKind backend_kind_from_name(std::string_view name) {
  if (name == "ref") return BackendKind::kRef;
  if (name == "cpu") return BackendKind::kCpu;
  if (name == "cpu-bf16") return BackendKind::kCpuBF16;
  throw Error("unknown backend '" + std::string(name) + "' (choose ref, cpu or cpu-bf16)");
}

}  // namespace upcycle::backend
