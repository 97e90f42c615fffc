// Expert initialisation recipes on one fp32 matrix (see expert_init.h).
#include "recipes/expert_init.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/rng.h"
#include "recipes/drawn_expert.h"
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

namespace {

// Mean and population std of n values in 64 fixed chunks, each summed in index order, the chunks in order:
// the result depends neither on the thread count nor on how values(first, count, buffer) hands out its
// fp32 values (a pointer to them, converted into buffer or not). Four chunks are summed side by side, each
// still in its own order: eight independent chains of double additions instead of two, so the loop runs
// at the adder's throughput rather than its latency.
template <typename Values>
MatrixStats chunked_stats(size_t n, Values&& values) {
  constexpr size_t kChunks = 64, kLanes = 4, kPiece = 4096;
  std::vector<double> sum(kChunks, 0.0), sq(kChunks, 0.0);
#pragma omp parallel for schedule(static) if (n > (size_t{1} << 18))
  for (int64_t g = 0; g < int64_t(kChunks / kLanes); ++g) {
    std::vector<float> buffer(kLanes * kPiece);
    size_t at[kLanes], end[kLanes];
    double s[kLanes] = {}, q[kLanes] = {};
    for (size_t l = 0; l < kLanes; ++l) {
      const size_t c = size_t(g) * kLanes + l;
      at[l] = n * c / kChunks, end[l] = n * (c + 1) / kChunks;
    }
    while (true) {
      const float* w[kLanes];
      size_t count = kPiece;
      for (size_t l = 0; l < kLanes; ++l) count = std::min(count, end[l] - at[l]);
      if (count == 0) break;
      for (size_t l = 0; l < kLanes; ++l) w[l] = values(at[l], count, buffer.data() + l * kPiece);
      for (size_t i = 0; i < count; ++i)
        for (size_t l = 0; l < kLanes; ++l) s[l] += w[l][i], q[l] += double(w[l][i]) * w[l][i];
      for (size_t l = 0; l < kLanes; ++l) at[l] += count;
    }
    for (size_t l = 0; l < kLanes; ++l) {  // chunk lengths differ by at most one: their last values
      for (; at[l] < end[l]; ++at[l]) {
        const float v = *values(at[l], 1, buffer.data());
        s[l] += v, q[l] += double(v) * v;
      }
      sum[size_t(g) * kLanes + l] = s[l], sq[size_t(g) * kLanes + l] = q[l];
    }
  }
  double total = 0, total_sq = 0;
  for (size_t c = 0; c < kChunks; ++c) total += sum[c], total_sq += sq[c];
  MatrixStats st;
  if (n == 0) return st;
  st.mean = total / double(n);
  st.std = std::sqrt(std::max(0.0, total_sq / double(n) - st.mean * st.mean));
  return st;
}

}  // namespace

MatrixStats matrix_stats(const float* w, size_t n) {
  return chunked_stats(n, [w](size_t first, size_t, float*) { return w + first; });
}

MatrixStats matrix_stats(const RawMatrix& dense) {
  const size_t size = dtype_size(dense.dtype);
  return chunked_stats(size_t(dense.rows) * size_t(dense.cols), [&](size_t first, size_t count, float* buffer) {
    convert_floats(dense.bytes.data() + first * size, dense.dtype, buffer, DType::kF32, count);
    return static_cast<const float*>(buffer);
  });
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

MatrixStats neuron_stats(const std::vector<int64_t>& S, int64_t D, const std::function<void(int64_t, float*)>& neuron) {
  std::vector<float> values(static_cast<size_t>(D));
  double sum = 0, sq = 0;
  for (int64_t j : S) {
    neuron(j, values.data());
    for (float v : values) sum += v, sq += double(v) * v;
  }
  const double n = double(S.size()) * double(D);
  MatrixStats s;
  if (n == 0) return s;
  s.mean = sum / n;
  s.std = std::sqrt(std::max(0.0, sq / n - s.mean * s.mean));
  return s;
}

void normals_at(const CounterRng& values, uint64_t base, const std::vector<int64_t>& S, float* z,
                std::vector<uint64_t>& pairs, std::vector<float>& pair_z) {
  pairs.resize(S.size());
  size_t np = 0;
  for (int64_t j : S) {
    const uint64_t pair = (base + uint64_t(j)) >> 1;
    if (np == 0 || pairs[np - 1] != pair) pairs[np++] = pair;  // S sorted: a shared pair is adjacent
  }
  pair_z.resize(2 * np);
  values.normal_pairs(pairs.data(), np, pair_z.data());
  size_t p = 0;
  for (size_t k = 0; k < S.size(); ++k) {
    const uint64_t i = base + uint64_t(S[k]);
    if (pairs[p] != i >> 1) ++p;
    z[k] = pair_z[2 * p + (i & 1)];
  }
}

void init_expert_matrix(float* w, int64_t width, int64_t D, FfnMatrix m, const ExpertInitParams& p, MatrixStats dense,
                        std::string_view prefix, std::string_view tensor_name) {
  if (p.init == ExpertInit::kCopy) return;
  const size_t n = size_t(width) * size_t(D);
  RawMatrix stored{DType::kF32, m == FfnMatrix::kDown ? D : width, m == FfnMatrix::kDown ? width : D,
                   std::vector<std::byte>(n * sizeof(float))};
  std::memcpy(stored.bytes.data(), w, n * sizeof(float));
  DrawnExpertSpec spec;
  spec.dense = &stored, spec.m = m, spec.width = width, spec.D = D;
  spec.neurons.resize(size_t(width));
  for (int64_t j = 0; j < width; ++j) spec.neurons[size_t(j)] = j;
  spec.init = p, spec.stats = dense, spec.prefix = prefix, spec.tensor_name = tensor_name;
  spec.out = DType::kF32;
  const DrawnExpert expert(std::move(spec));
  expert.fill(0, expert.rows(), reinterpret_cast<std::byte*>(w));
}

}  // namespace upcycle::recipes
