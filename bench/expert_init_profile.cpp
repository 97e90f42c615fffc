// Where one computed expert matrix's time goes (issue 22): each step `upcycle convert --expert-init drop`
// takes for a dense FFN matrix of the given shape (default the 1B preset's 8192 × 2048), timed alone —
// reading bf16 → f32, mean/std, the gather copy, drop's normals for a gate (row) and a down (column)
// matrix, f32 → bf16 for the write — and, for comparison, the per-element normal() calls drop made
// before pairs were shared (one per re-drawn element, one thread). OMP_NUM_THREADS sets the threads.
// Usage: bench_expert_init_profile [F D]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/dtype.h"
#include "core/rng.h"
#include "recipes/expert_init.h"

using namespace upcycle;
using namespace upcycle::recipes;

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

int main(int argc, char** argv) {
  const int64_t F = argc > 2 ? std::atoll(argv[1]) : 8192, D = argc > 2 ? std::atoll(argv[2]) : 2048;
  const size_t n = size_t(F) * size_t(D);
  std::vector<float> dense(n), w(n);
  std::vector<uint16_t> bf16(n);
  CounterRng(1, "dense").fill_normal(dense.data(), 0, n, 0.0f, 0.02f);
  f32_to_bf16_n(dense.data(), bf16.data(), n);
  auto t = std::chrono::steady_clock::now();
  convert_floats(bf16.data(), DType::kBF16, dense.data(), DType::kF32, n);
  std::printf("%-44s %8.3f s\n", "read bf16 -> f32", seconds_since(t));
  t = std::chrono::steady_clock::now();
  const MatrixStats stats = matrix_stats(dense.data(), n);
  std::printf("%-44s %8.3f s\n", "mean/std (once per dense matrix)", seconds_since(t));
  t = std::chrono::steady_clock::now();
  w = dense;
  std::printf("%-44s %8.3f s\n", "gather (a copy)", seconds_since(t));
  ExpertInitParams p;
  p.init = ExpertInit::kDrop;
  for (FfnMatrix m : {FfnMatrix::kGate, FfnMatrix::kDown}) {
    t = std::chrono::steady_clock::now();
    init_expert_matrix(w.data(), F, D, m, p, stats, "layer0.expert0", "unused");
    std::printf("drop r=0.5 normals, %-24s %8.3f s\n", m == FfnMatrix::kGate ? "gate (rows)" : "down (columns)",
                seconds_since(t));
  }
  t = std::chrono::steady_clock::now();
  f32_to_bf16_n(w.data(), bf16.data(), n);
  std::printf("%-44s %8.3f s\n", "f32 -> bf16 (write conversion)", seconds_since(t));
  const CounterRng rng(1, "old");
  t = std::chrono::steady_clock::now();
  double sum = 0;
  for (size_t i = 0; i < n / 2; ++i) sum += rng.normal(i);
  std::printf("%-44s %8.3f s (checksum %g)\n", "old: normal() per re-drawn element, 1 thread", seconds_since(t), sum);
  return 0;
}
