// The registry's door to the cuda backend (backend.cpp includes this when upcycle is built with CUDA):
// plain C++, no CUDA headers, so the rest of the engine compiles with g++ alone.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"

namespace upcycle::backend {

// The number of CUDA devices this process sees (0 when there is no driver or no GPU; never throws).
int cuda_device_count();
// The name of device 0 as the driver reports it ("NVIDIA H100 80GB HBM3"); empty when there is none.
std::string cuda_device_name();
// A CudaBackend on device 0; throws upcycle::Error with a one-line reason when no GPU is usable.
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace upcycle::backend
