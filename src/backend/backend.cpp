// The backend registry and selection by kind or by the name a user types (--backend).
// Invariant: every compiled BackendKind has exactly one registry row and one implementation (kCuda has
// neither in a build without CUDA); an unknown name is a user error (upcycle::Error) listing the
// registered names, not an internal check. A compiled backend may be unavailable at run time (cuda
// without a GPU): backend_available says so, and make_backend throws Error with the reason.
#include "backend/backend.h"

#include <array>
#include <string>

#include "backend/cpu/cpu_backend.h"
#include "backend/ref/ref_backend.h"
#include "core/error.h"
#ifdef UPCYCLE_HAVE_CUDA
#include "backend/cuda_module.h"
#endif

namespace upcycle::backend {
namespace {

constexpr std::array kBackends = {
    BackendInfo{BackendKind::kCpu, "cpu", "fp32, OpenBLAS sgemm and OpenMP kernels (the default)"},
    BackendInfo{BackendKind::kCpuBF16, "cpu-bf16",
                "matmuls from bf16-rounded inputs with fp32 accumulation (oneDNN), everything else as cpu"},
    BackendInfo{BackendKind::kRef, "ref", "naive loops with double accumulation: the slow oracle tests compare with"},
#ifdef UPCYCLE_HAVE_CUDA
    BackendInfo{BackendKind::kCuda, "cuda",
                "one NVIDIA GPU: bf16 tensor-core matmuls with fp32 accumulation (as cpu-bf16), fp32 elsewhere"},
#endif
};

}  // namespace

std::span<const BackendInfo> registered_backends() { return kBackends; }

std::vector<std::string> backend_names() {
  std::vector<std::string> names;
  for (const BackendInfo& info : kBackends) names.emplace_back(info.name);
  return names;
}

std::unique_ptr<Backend> make_backend(BackendKind kind) {
  switch (kind) {
    case BackendKind::kRef:
      return std::make_unique<RefBackend>();
    case BackendKind::kCpu:
      return std::make_unique<CpuBackend>();
    case BackendKind::kCpuBF16:
      return std::make_unique<CpuBackend>(MatmulPrecision::kBF16);
    case BackendKind::kCuda:
#ifdef UPCYCLE_HAVE_CUDA
      return make_cuda_backend();
#else
      throw Error("this upcycle was built without the cuda backend (rebuild where nvcc is found, UPCYCLE_CUDA=ON)");
#endif
  }
  UPCYCLE_CHECK(false, "unhandled BackendKind");
}

bool backend_available(BackendKind kind) {
  switch (kind) {
    case BackendKind::kRef:
    case BackendKind::kCpu:
    case BackendKind::kCpuBF16:
      return true;
    case BackendKind::kCuda:
#ifdef UPCYCLE_HAVE_CUDA
      return cuda_device_count() > 0;
#else
      return false;
#endif
  }
  return false;
}

BackendKind backend_kind_from_name(std::string_view name) {
  for (const BackendInfo& info : kBackends)
    if (info.name == name) return info.kind;
  std::string choices;
  for (size_t i = 0; i < kBackends.size(); ++i)
    choices += (i == 0 ? "" : i + 1 == kBackends.size() ? " or " : ", ") + std::string(kBackends[i].name);
  throw Error("unknown backend '" + std::string(name) + "' (choose " + choices + ")");
}

}  // namespace upcycle::backend
