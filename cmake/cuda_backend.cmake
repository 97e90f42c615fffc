# The cuda backend (issue 17): a static library upcycle_backend_cuda from src/backend/cuda/*.cu, linked
# into upcycle_backend, which then carries UPCYCLE_HAVE_CUDA=1 (PUBLIC: the registry and the tests see it).
# UPCYCLE_CUDA defaults to ON when a CUDA compiler is found; the sanitizer and fuzz builds never build it
# (nvcc's device code cannot be instrumented, and `make test-asan` must stay inside CI's time).
# CMAKE_CUDA_ARCHITECTURES defaults to 90 (H100/H200, the machines the GPU checks run on); override it
# on the cmake line for other cards (e.g. -DCMAKE_CUDA_ARCHITECTURES="80;90").
include(CheckLanguage)
check_language(CUDA)
set(upcycle_cuda_default OFF)
if(CMAKE_CUDA_COMPILER AND NOT UPCYCLE_SANITIZE AND NOT UPCYCLE_FUZZ)
  set(upcycle_cuda_default ON)
endif()
option(UPCYCLE_CUDA "Build the cuda backend (default: ON when nvcc is found)" ${upcycle_cuda_default})

if(UPCYCLE_CUDA AND (UPCYCLE_SANITIZE OR UPCYCLE_FUZZ))
  message(STATUS "upcycle: cuda backend not built (UPCYCLE_SANITIZE / UPCYCLE_FUZZ builds leave it out)")
  return()
elseif(UPCYCLE_CUDA AND NOT CMAKE_CUDA_COMPILER)
  message(FATAL_ERROR "UPCYCLE_CUDA=ON but no CUDA compiler was found (put nvcc on PATH or set CMAKE_CUDA_COMPILER)")
endif()

if(NOT UPCYCLE_CUDA)
  message(STATUS "upcycle: cuda backend not built (UPCYCLE_CUDA=OFF, no nvcc, or a sanitizer/fuzz build)")
  return()
endif()

if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 90)
endif()
if(CMAKE_CXX_COMPILER_LAUNCHER AND NOT CMAKE_CUDA_COMPILER_LAUNCHER)
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${CMAKE_CXX_COMPILER_LAUNCHER})  # ccache caches nvcc too
endif()
enable_language(CUDA)
# CMake before 3.26 knows no CUDA20 dialect for nvcc, though nvcc ≥ 12 takes -std=c++20: name its flag.
if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
endif()
set(CMAKE_CUDA_STANDARD 20)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(CMAKE_CUDA_EXTENSIONS OFF)
find_package(CUDAToolkit REQUIRED)

file(GLOB upcycle_cuda_srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/backend/cuda/*.cu)
add_library(upcycle_backend_cuda STATIC ${upcycle_cuda_srcs})
target_include_directories(upcycle_backend_cuda PUBLIC ${CMAKE_SOURCE_DIR}/src)
target_compile_options(upcycle_backend_cuda PRIVATE
                       $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wno-unused-parameter>)
# upcycle_backend and upcycle_backend_cuda need each other (the registry makes the backend; the kernels'
# host side may use the backend folder's shared rules, e.g. moe_route_rules): a static-library cycle,
# which CMake resolves by repeating the pair on the link line.
target_link_libraries(upcycle_backend_cuda PUBLIC upcycle_core CUDA::cudart CUDA::cublasLt PRIVATE upcycle_backend)
target_link_libraries(upcycle_backend PUBLIC upcycle_backend_cuda)
target_compile_definitions(upcycle_backend PUBLIC UPCYCLE_HAVE_CUDA=1)
message(STATUS "upcycle: cuda backend built (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, CUDA architectures ${CMAKE_CUDA_ARCHITECTURES})")
