// Where one computed expert matrix's time goes (issue 22): each step `upcycle convert --expert-init drop`
// takes for a dense FFN matrix of the given shape (default the 1B preset's 8192 × 2048), timed alone —
// reading bf16 → f32, mean/std, a copy of the matrix, then one whole expert (all F neurons) made as the
// converter makes it, from the bf16 matrix straight to bf16 (DrawnExpert on one thread): drop r = 0.5 as a
// gate (rows) and a down (columns) matrix, noise r = 0.5, random, under stream v1 and v2 — and f32 → bf16.
// Then the recipes that draw nothing (shuffled split G = 2, cube-root scaling): one half-width expert
// made through fp32 (convert the dense matrix, gather, scale, f32 → bf16, as before issue 22's part 3)
// next to gather_neurons straight from the bf16 matrix. OMP_NUM_THREADS sets the threads.
// Usage: bench_expert_init_profile [F D]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/rng.h"
#include "recipes/drawn_expert.h"
#include "recipes/expert_init.h"
#include "recipes/neuron_gather.h"

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
  RawMatrix raw{DType::kBF16, F, D, std::vector<std::byte>(n * 2)};
  std::memcpy(raw.bytes.data(), bf16.data(), n * 2);
  // Each computing recipe's whole expert matrix, bf16 dense → bf16 expert, as the converter makes it
  // (DrawnExpert, row by row, on this thread), under both stream versions (--rng-version).
  std::vector<int64_t> all_neurons(static_cast<size_t>(F));
  for (int64_t j = 0; j < F; ++j) all_neurons[size_t(j)] = j;
  std::vector<std::byte> expert_bytes(n * 2);
  for (RngVersion v : {RngVersion::kV1, RngVersion::kV2}) {
    const char* vn = v == RngVersion::kV1 ? "v1" : "v2";
    for (ExpertInit init : {ExpertInit::kDrop, ExpertInit::kNoise, ExpertInit::kRandom}) {
      for (FfnMatrix m : {FfnMatrix::kGate, FfnMatrix::kDown}) {
        if (init == ExpertInit::kRandom && m == FfnMatrix::kDown) continue;  // random fills the whole matrix alike
        if (m == FfnMatrix::kDown) raw.rows = D, raw.cols = F;  // the same bytes read as a [D, F] down_proj
        else raw.rows = F, raw.cols = D;
        DrawnExpertSpec spec;
        spec.dense = init == ExpertInit::kRandom ? nullptr : &raw, spec.m = m, spec.width = F, spec.D = D;
        spec.neurons = all_neurons;
        spec.init.init = init, spec.init.rng_version = v, spec.stats = stats;
        spec.prefix = "layer0.expert0", spec.tensor_name = "layer0.expert0.w";
        t = std::chrono::steady_clock::now();
        const DrawnExpert expert(std::move(spec));
        expert.fill(0, expert.rows(), expert_bytes.data());
        char label[64];
        std::snprintf(label, sizeof label, "%s %s%s, %s", vn, std::string(expert_init_name(init)).c_str(),
                      init == ExpertInit::kRandom ? "" : " r=0.5",
                      init == ExpertInit::kRandom ? "whole matrix" : m == FfnMatrix::kGate ? "gate (rows)" : "down (columns)");
        std::printf("%-44s %8.3f s\n", label, seconds_since(t));
      }
    }
  }
  raw.rows = F, raw.cols = D;
  t = std::chrono::steady_clock::now();
  f32_to_bf16_n(w.data(), bf16.data(), n);
  std::printf("%-44s %8.3f s\n", "f32 -> bf16 (write conversion)", seconds_since(t));
  std::vector<int64_t> half;
  for (int64_t j = 0; j < F; j += 2) half.push_back((j * 7919) % F);  // F/2 shuffled neurons
  const double cube_root_2 = 1.2599210498948732;
  for (FfnMatrix m : {FfnMatrix::kGate, FfnMatrix::kDown}) {
    if (m == FfnMatrix::kDown) raw.rows = D, raw.cols = F;  // the same bytes read as a [D, F] down_proj
    for (double scale : {1.0, cube_root_2}) {
      const char* what = m == FfnMatrix::kGate ? (scale == 1.0 ? "split G=2, gate" : "cube-root G=2, gate")
                                               : (scale == 1.0 ? "split G=2, down" : "cube-root G=2, down");
      t = std::chrono::steady_clock::now();
      std::vector<float> all = to_f32(raw);
      const double convert_in = seconds_since(t);
      t = std::chrono::steady_clock::now();
      std::vector<float> e(half.size() * size_t(D));  // [W, D] or [D, W]
      const int64_t W = int64_t(half.size());
      if (m == FfnMatrix::kGate) {
        for (int64_t j = 0; j < W; ++j) std::copy_n(all.begin() + half[size_t(j)] * D, D, e.begin() + j * D);
      } else {
        for (int64_t d = 0; d < D; ++d)
          for (int64_t j = 0; j < W; ++j) e[size_t(d * W + j)] = all[size_t(d * F + half[size_t(j)])];
      }
      const double gathered = seconds_since(t);
      t = std::chrono::steady_clock::now();
      if (scale != 1.0)
        for (float& v : e) v *= float(scale);
      const double scaled = seconds_since(t);
      t = std::chrono::steady_clock::now();
      std::vector<std::byte> out = encode_f32(e, DType::kBF16);
      const double encoded = seconds_since(t);
      t = std::chrono::steady_clock::now();
      std::vector<std::byte> direct = gather_neurons(raw, m, half, scale, DType::kBF16);
      const double direct_s = seconds_since(t);
      std::printf("%-22s fp32 route: to f32 (per dense) %.3f + gather %.3f + scale %.3f + f32->bf16 %.3f s;"
                  " gather_neurons %.3f s%s\n",
                  what, convert_in, gathered, scaled, encoded, direct_s, direct == out ? "" : " (BYTES DIFFER)");
    }
  }
  return 0;
}
