// backend_kinds() for unit_tests (label fast): every registered backend whose memory the host can read
// — ref, cpu, cpu-bf16. Many of the parameterised tests hand ops host arrays, which only these accept;
// the cuda backend runs the device-safe ones in gpu_tests (gpu/backend_kinds_cuda.cpp), so the fast
// tier gives the same result on a machine with a GPU as on CI's machines without one.
#include "support/backend_test_support.h"

namespace upcycle::test {

std::vector<backend::BackendKind> backend_kinds() {
  std::vector<backend::BackendKind> kinds;
  for (const backend::BackendInfo& info : backend::registered_backends())
    if (info.kind != backend::BackendKind::kCuda) kinds.push_back(info.kind);
  return kinds;
}

}  // namespace upcycle::test
