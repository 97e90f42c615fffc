// Backend selection by kind or by the name a user types (--backend ref|cpu).
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
  }
  UPCYCLE_CHECK(false, "unhandled BackendKind");
}

BackendKind backend_kind_from_name(std::string_view name) {
  if (name == "ref") return BackendKind::kRef;
  if (name == "cpu") return BackendKind::kCpu;
  throw Error("unknown backend '" + std::string(name) + "' (choose ref or cpu)");
}

}  // namespace upcycle::backend
