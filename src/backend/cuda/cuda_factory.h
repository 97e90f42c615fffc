// The entry points of the cuda backend module (libupcycle_backend_cuda.so). The module is loaded with
// dlopen only when a command asks for the cuda backend (backend/cuda_module.cpp), so the CUDA runtime
// and cuBLASLt (≈200 MB of resident pages once mapped and relocated) never load into a CPU run. Plain
// C names: the loader looks them up with dlsym, and they cannot collide with the loader's own C++
// functions, which the executable exports to the module.
#pragma once

#include <cstddef>

#include "backend/backend.h"

extern "C" {
// The number of CUDA devices this process sees (0 when there is no driver or no GPU; never throws).
int upcycle_cuda_device_count();
// Writes device 0's name as the driver reports it ("NVIDIA H100 80GB HBM3"), NUL-terminated and cut to
// `size` bytes; "" when there is none.
void upcycle_cuda_device_name(char* out, size_t size);
// A new CudaBackend on device 0 (the caller owns it); throws upcycle::Error with a one-line reason when
// no GPU is usable.
upcycle::backend::Backend* upcycle_cuda_make_backend();
}
