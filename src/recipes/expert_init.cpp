// Expert initialisation recipes on one fp32 matrix (see expert_init.h).
#include "recipes/expert_init.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/rng.h"
#include "recipes/expert_split.h"

namespace upcycle::recipes {

std::string_view ffn_matrix_name(FfnMatrix m) {
  switch (m) {
    case FfnMatrix::kGate: return "gate";
    case FfnMatrix::kUp: return "up";
    case FfnMatrix::kDown: return "down";
  }
  return "?";
}

MatrixStats matrix_stats(const float* w, size_t n) {
  // Fixed chunks summed in order: the result does not depend on the thread count.
  constexpr size_t kChunks = 64;
  std::vector<double> sum(kChunks, 0.0), sq(kChunks, 0.0);
#pragma omp parallel for schedule(static) if (n > (size_t{1} << 18))
  for (int64_t c = 0; c < int64_t(kChunks); ++c) {
    const size_t begin = n * size_t(c) / kChunks, end = n * size_t(c + 1) / kChunks;
    for (size_t i = begin; i < end; ++i) sum[size_t(c)] += w[i], sq[size_t(c)] += double(w[i]) * w[i];
  }
  double total = 0, total_sq = 0;
  for (size_t c = 0; c < kChunks; ++c) total += sum[c], total_sq += sq[c];
  MatrixStats s;
  if (n == 0) return s;
  s.mean = total / double(n);
  s.std = std::sqrt(std::max(0.0, total_sq / double(n) - s.mean * s.mean));
  return s;
}

int64_t reinit_count(double ratio, int64_t width) {
  return std::min<int64_t>(width, static_cast<int64_t>(std::floor(ratio * double(width) + 1e-9)));
}

std::vector<int64_t> reinit_neurons(const ExpertInitParams& p, std::string_view prefix, FfnMatrix m, int64_t width) {
  std::string stream(prefix);
  if (p.scope == DropScope::kMatrix) stream += "." + std::string(ffn_matrix_name(m));
  stream += ".neurons";
  return sample_without_replacement(CounterRng(p.seed, stream), width, reinit_count(p.ratio, width));
}

namespace {

// Calls f(index into w) for every element of neuron j (a row of gate/up, a column of down).
template <typename Fn>
void for_neuron(int64_t width, int64_t D, FfnMatrix m, int64_t j, Fn&& f) {
  if (m == FfnMatrix::kDown)
    for (int64_t d = 0; d < D; ++d) f(d * width + j);
  else
    for (int64_t d = 0; d < D; ++d) f(j * D + d);
}

MatrixStats slice_stats(const float* w, int64_t width, int64_t D, FfnMatrix m, const std::vector<int64_t>& S) {
  double sum = 0, sq = 0;
  for (int64_t j : S) for_neuron(width, D, m, j, [&](int64_t i) { sum += w[i]; sq += double(w[i]) * w[i]; });
  const double n = double(S.size()) * double(D);
  MatrixStats s;
  if (n == 0) return s;
  s.mean = sum / n;
  s.std = std::sqrt(std::max(0.0, sq / n - s.mean * s.mean));
  return s;
}

// Calls apply(i, z) with z = values.normal(i) for every element i of the neurons S (sorted) — the
// same (i, z) pairs as per-element normal() calls, but one Box–Muller draw per pair of counters, and
// in batches (which v2 vectorises): a gate/up neuron is a contiguous row; a down row's re-drawn columns
// are scattered, so their distinct pairs are listed and drawn together. Parallel over rows; every
// value depends on i alone.
template <typename Apply>
void for_drawn_normals(const CounterRng& values, int64_t width, int64_t D, FfnMatrix m, const std::vector<int64_t>& S,
                       bool big, Apply&& apply) {
  const int64_t count = int64_t(S.size());
  if (m != FfnMatrix::kDown) {
#pragma omp parallel if (big)
    {
      std::vector<float> row(static_cast<size_t>(D));
#pragma omp for schedule(static)
      for (int64_t k = 0; k < count; ++k) {
        const int64_t first = S[size_t(k)] * D;
        values.fill_standard_normal(row.data(), uint64_t(first), size_t(D));
        for (int64_t d = 0; d < D; ++d) apply(first + d, row[size_t(d)]);
      }
    }
    return;
  }
#pragma omp parallel if (big)
  {
    std::vector<uint64_t> pairs(size_t(count) + 1);
    std::vector<uint32_t> z_index(static_cast<size_t>(count));  // where element k's value lands in z
    std::vector<float> z(2 * pairs.size());
#pragma omp for schedule(static)
    for (int64_t d = 0; d < D; ++d) {
      const int64_t base = d * width;
      size_t np = 0;
      for (int64_t k = 0; k < count; ++k) {
        const uint64_t i = uint64_t(base + S[size_t(k)]);
        if (np == 0 || pairs[np - 1] != i >> 1) pairs[np++] = i >> 1;  // S sorted: a shared pair is adjacent
        z_index[size_t(k)] = uint32_t(2 * (np - 1) + (i & 1));
      }
      values.normal_pairs(pairs.data(), np, z.data());
      for (int64_t k = 0; k < count; ++k) apply(base + S[size_t(k)], z[z_index[size_t(k)]]);
    }
  }
}

}  // namespace

void init_expert_matrix(float* w, int64_t width, int64_t D, FfnMatrix m, const ExpertInitParams& p, MatrixStats dense,
                        std::string_view prefix, std::string_view tensor_name) {
  const size_t n = size_t(width) * size_t(D);
  switch (p.init) {
    case ExpertInit::kCopy: return;
    case ExpertInit::kRandom: {
      const float std = float(p.init_std);  // as fill_normal(…, 0, std): 0 + std·z
      CounterRng(p.seed, tensor_name, p.rng_version).for_each_normal_parallel(0, n, [&](size_t i, float z) { w[i] = 0.0f + std * z; });
      return;
    }
    case ExpertInit::kNoise:
    case ExpertInit::kDrop: break;
  }
  const auto S = reinit_neurons(p, prefix, m, width);
  const CounterRng values(p.seed, std::string(prefix) + "." + std::string(ffn_matrix_name(m)) + ".values",
                          p.rng_version);
  const bool big = n > (size_t{1} << 18);
  if (p.init == ExpertInit::kNoise) {
    const float noise_std = float(p.noise_std);
    for_drawn_normals(values, width, D, m, S, big, [&](int64_t i, float z) { w[i] += noise_std * z; });
    return;
  }
  const MatrixStats st = p.stats == DropStats::kMatrix ? dense : slice_stats(w, width, D, m, S);
  for_drawn_normals(values, width, D, m, S, big, [&](int64_t i, float z) { w[i] = float(st.mean + st.std * double(z)); });
}

}  // namespace upcycle::recipes
