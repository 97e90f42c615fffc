// The registry's door to the cuda backend in a CUDA build: the backend lives in its own shared module,
// libupcycle_backend_cuda.so, loaded with dlopen on first use, so that CPU runs never map the CUDA
// runtime and cuBLASLt. The module resolves its references to the engine (Error, the op checks, the
// shared routing rules) against the executable, which is linked with its symbols exported.
// Where the module is looked for, first match wins: $UPCYCLE_CUDA_MODULE, the executable's own
// directory, the build tree's path compiled in. Non-goals: unloading, several modules.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"

namespace upcycle::backend {

// The number of CUDA devices this process sees: 0 when the module cannot load, there is no driver or
// no GPU. Never throws.
int cuda_device_count();
// Device 0's name ("NVIDIA H100 80GB HBM3"); empty when there is none.
std::string cuda_device_name();
// A CudaBackend on device 0; throws upcycle::Error with a one-line reason (the module that would not
// load and dlerror's words, or no GPU).
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace upcycle::backend
