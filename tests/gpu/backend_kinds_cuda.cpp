// backend_kinds() for gpu_tests (label gpu): the cuda backend alone. Deliberately not filtered by
// backend_available(): on a machine without a GPU every parameterised test then fails at make_backend
// with the one-line reason ("no CUDA GPU is visible to this process ...") instead of being skipped.
// Listing the tests (gtest_discover_tests at build time) touches no GPU.
#include "support/backend_test_support.h"

namespace upcycle::test {

std::vector<backend::BackendKind> backend_kinds() { return {backend::BackendKind::kCuda}; }

}  // namespace upcycle::test
