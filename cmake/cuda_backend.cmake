# The cuda backend (issue 17): a shared module libupcycle_backend_cuda.so from src/backend/cuda/*.cu,
# built next to the upcycle binary and loaded with dlopen only when a command asks for `--backend cuda`
# (backend/cuda_module.cpp): linking the CUDA runtime and cuBLASLt into the binary itself added ≈210 MB
# of resident memory to every CPU run (`upcycle --help`: 11 → 223 MB peak RSS). upcycle_backend carries
# UPCYCLE_HAVE_CUDA=1 (PUBLIC: the registry and the tests see it). The module's references to the engine
# (Error, the op checks, the shared routing rules) resolve against the executable, so in a CUDA build
# every executable exports its symbols (CMAKE_ENABLE_EXPORTS, i.e. -rdynamic); dlopen(RTLD_NOW) in the
# fast tier's cuda_unavailable test fails if one is missing.
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
add_library(upcycle_backend_cuda SHARED ${upcycle_cuda_srcs})
set_target_properties(upcycle_backend_cuda PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
target_include_directories(upcycle_backend_cuda PRIVATE ${CMAKE_SOURCE_DIR}/src)
target_compile_options(upcycle_backend_cuda PRIVATE
                       $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wno-unused-parameter,-Wno-unknown-pragmas>)  # rng.h's OpenMP pragmas: nvcc's host pass has no -fopenmp
target_link_libraries(upcycle_backend_cuda PRIVATE CUDA::cudart CUDA::cublasLt)
add_dependencies(upcycle_backend upcycle_backend_cuda)  # built whenever the engine is
target_compile_definitions(upcycle_backend PUBLIC UPCYCLE_HAVE_CUDA=1
                           PRIVATE UPCYCLE_CUDA_MODULE_BUILD_PATH="$<TARGET_FILE:upcycle_backend_cuda>")
target_link_libraries(upcycle_backend PUBLIC ${CMAKE_DL_LIBS})
set(CMAKE_ENABLE_EXPORTS ON)  # every executable defined after this point (all of them) exports its symbols
message(STATUS "upcycle: cuda backend built (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, CUDA architectures ${CMAKE_CUDA_ARCHITECTURES})")
