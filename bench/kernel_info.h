// Which BLAS kernels a benchmark process runs, printed next to its timings: OpenBLAS's core type
// (DYNAMIC_ARCH picks it at load time from the CPU, or from OPENBLAS_CORETYPE when set) and build
// configuration, the OPENBLAS_* settings in force, and oneDNN's version and the most capable ISA it
// may dispatch to (the ceiling for every primitive: which implementation a matmul actually ran is only
// in ONEDNN_VERBOSE, which scripts/bench captures). Benchmarks only: library code stays behind the
// Backend interface.
#pragma once

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstdio>
#include <cstdlib>

namespace upcycle::bench {

inline const char* dnnl_isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

inline void print_kernel_info() {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "(unset)";
  };
  std::printf("upcycle kernels: OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s OMP_NUM_THREADS=%s\n",
              env("OPENBLAS_CORETYPE"), env("OPENBLAS_L2_SIZE"), env("OMP_NUM_THREADS"));
  std::printf("upcycle kernels: OpenBLAS core %s, %d threads; config: %s\n", openblas_get_corename(),
              openblas_get_num_threads(), openblas_get_config());
  const dnnl_version_t* v = dnnl_version();
  std::printf("upcycle kernels: oneDNN %d.%d.%d (cpu-bf16 matmuls), effective ISA %s\n", v->major, v->minor,
              v->patch, dnnl_isa_name(dnnl_get_effective_cpu_isa()));
  std::fflush(stdout);
}

}  // namespace upcycle::bench
