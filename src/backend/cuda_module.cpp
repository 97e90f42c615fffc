// Loads the cuda backend module on first use (backend/cuda_module.h). Compiled into every build; the
// functions exist only where the module is built (UPCYCLE_HAVE_CUDA).
#include "backend/cuda_module.h"

#ifdef UPCYCLE_HAVE_CUDA

#include <dlfcn.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#include "backend/cuda/cuda_factory.h"
#include "core/error.h"

namespace upcycle::backend {
namespace {

constexpr const char* kModuleName = "libupcycle_backend_cuda.so";

struct CudaModule {
  void* handle = nullptr;
  std::string error;  // why it did not load (every path tried, dlerror's words)
  decltype(&upcycle_cuda_device_count) device_count = nullptr;
  decltype(&upcycle_cuda_device_name) device_name = nullptr;
  decltype(&upcycle_cuda_make_backend) make_backend = nullptr;
};

std::vector<std::string> module_candidates() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("UPCYCLE_CUDA_MODULE"); env && *env) paths.emplace_back(env);
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) paths.push_back((exe.parent_path() / kModuleName).string());
  paths.emplace_back(UPCYCLE_CUDA_MODULE_BUILD_PATH);
  return paths;
}

const CudaModule& cuda_module() {
  static CudaModule module;
  static std::once_flag once;
  std::call_once(once, [] {
    for (const std::string& path : module_candidates()) {
      if (::access(path.c_str(), F_OK) != 0) continue;
      // RTLD_NOW: an engine symbol the executable does not export fails here, with its name, rather
      // than in the middle of a run.
      void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!handle) {
        module.error = ::dlerror();
        return;
      }
      module.device_count = reinterpret_cast<decltype(module.device_count)>(::dlsym(handle, "upcycle_cuda_device_count"));
      module.device_name = reinterpret_cast<decltype(module.device_name)>(::dlsym(handle, "upcycle_cuda_device_name"));
      module.make_backend = reinterpret_cast<decltype(module.make_backend)>(::dlsym(handle, "upcycle_cuda_make_backend"));
      if (!module.device_count || !module.device_name || !module.make_backend) {
        module.error = path + " lacks the upcycle_cuda_* entry points";
        return;
      }
      module.handle = handle;
      return;
    }
    module.error = std::string(kModuleName) + " not found (looked in $UPCYCLE_CUDA_MODULE, next to the executable and in " +
                   UPCYCLE_CUDA_MODULE_BUILD_PATH + ")";
  });
  return module;
}

}  // namespace

int cuda_device_count() {
  const CudaModule& m = cuda_module();
  return m.handle ? m.device_count() : 0;
}

std::string cuda_device_name() {
  const CudaModule& m = cuda_module();
  if (!m.handle) return {};
  std::array<char, 256> name{};
  m.device_name(name.data(), name.size());
  return name.data();
}

std::unique_ptr<Backend> make_cuda_backend() {
  const CudaModule& m = cuda_module();
  if (!m.handle) throw Error("the cuda backend module could not be loaded: " + m.error);
  return std::unique_ptr<Backend>(m.make_backend());
}

}  // namespace upcycle::backend

#endif  // UPCYCLE_HAVE_CUDA
