// A computed expert matrix, row by row, in the output dtype (see drawn_expert.h). Shape legend: D model
// width, F dense FFN width, W expert width; gate/up experts are [W, D], down experts [D, W].
#include "recipes/drawn_expert.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "recipes/neuron_gather.h"

namespace upcycle::recipes {

struct DrawnExpert::Scratch {
  std::vector<float> row, z, values;  // a row in fp32; normals; re-drawn values of a down row
  std::vector<std::byte> stored;      // a down row's elements in the stored dtype
  std::vector<uint64_t> pairs;        // Box–Muller pairs of a down row's re-drawn columns
  std::vector<float> pair_z;
};

namespace {

// The stream of an expert's recipe values: random experts draw like `upcycle init` (the tensor's own
// name); drop and noise "<prefix>.<matrix>.values" (expert_init.h).
CounterRng values_stream(const DrawnExpertSpec& s) {
  if (s.init.init == ExpertInit::kRandom) return CounterRng(s.init.seed, s.tensor_name, s.init.rng_version);
  return CounterRng(s.init.seed, s.prefix + "." + std::string(ffn_matrix_name(s.m)) + ".values", s.init.rng_version);
}

// Neuron j of the expert in fp32 (its D values in order), from the dense matrix as stored.
void neuron_values(const DrawnExpertSpec& s, int64_t j, std::vector<std::byte>& stored, float* out) {
  const RawMatrix& dense = *s.dense;
  const size_t size = dtype_size(dense.dtype);
  const int64_t n = s.neurons[size_t(j)];
  if (s.m != FfnMatrix::kDown) return convert_floats(dense.bytes.data() + size_t(n * s.D) * size, dense.dtype, out, DType::kF32, size_t(s.D));
  stored.resize(size_t(s.D) * size);
  for (int64_t d = 0; d < s.D; ++d)
    std::memcpy(stored.data() + size_t(d) * size, dense.bytes.data() + size_t(d * dense.cols + n) * size, size);
  convert_floats(stored.data(), dense.dtype, out, DType::kF32, size_t(s.D));
}

}  // namespace

DrawnExpert::DrawnExpert(DrawnExpertSpec spec) : spec_(std::move(spec)), values_(values_stream(spec_)) {
  const ExpertInit init = spec_.init.init;
  UPCYCLE_CHECK(init == ExpertInit::kRandom || (spec_.dense && int64_t(spec_.neurons.size()) == spec_.width),
                "DrawnExpert: the dense matrix and one neuron per expert row are needed");
  if (spec_.dense)
    for (int64_t n : spec_.neurons)
      UPCYCLE_CHECK(n >= 0 && n < (spec_.m == FfnMatrix::kDown ? spec_.dense->cols : spec_.dense->rows),
                    "DrawnExpert: neuron out of range");
  if (init == ExpertInit::kDrop || init == ExpertInit::kNoise) S_ = reinit_neurons(spec_.init, spec_.prefix, spec_.m, spec_.width);
  in_S_.assign(size_t(spec_.width), 0);
  for (int64_t j : S_) in_S_[size_t(j)] = 1;
  drop_stats_ = spec_.stats;
  if (init == ExpertInit::kDrop && spec_.init.stats == DropStats::kSlice) {
    std::vector<std::byte> stored;
    drop_stats_ = neuron_stats(S_, spec_.D, [&](int64_t j, float* out) { neuron_values(spec_, j, stored, out); });
  }
  contiguous_ = !spec_.neurons.empty();
  for (size_t j = 1; j < spec_.neurons.size() && contiguous_; ++j) contiguous_ = spec_.neurons[j] == spec_.neurons[0] + int64_t(j);
  verbatim_ = init != ExpertInit::kRandom && !spec_.noise && copies_verbatim(spec_.dense->dtype, spec_.out, spec_.scale);
}

float DrawnExpert::redrawn(float dense_value, float z) const {
  if (spec_.init.init == ExpertInit::kNoise) return dense_value + float(spec_.init.noise_std) * z;
  return float(drop_stats_.mean + drop_stats_.std * double(z));  // drop: R ~ N(μ, σ²)
}

void DrawnExpert::fill(int64_t first, int64_t count, std::byte* out) const {
  UPCYCLE_CHECK(first >= 0 && count >= 0 && first + count <= rows(), "DrawnExpert::fill past the last row");
  Scratch s;
  s.row.resize(size_t(cols()));
  s.z.resize(size_t(cols()));
  for (int64_t r = first; r < first + count; ++r) {
    std::byte* to = out + size_t(r - first) * row_bytes();
    if (spec_.init.init == ExpertInit::kRandom) {
      const float std = float(spec_.init.init_std);  // as fill_normal(…, 0, std): 0 + std·z
      values_.fill_standard_normal(s.row.data(), uint64_t(r * cols()), s.row.size());
      for (float& v : s.row) v = 0.0f + std * v;
      finish_row(r, s.row.data(), to, s);
    } else if (spec_.m == FfnMatrix::kDown) {
      fill_down_row(r, to, s);
    } else {
      fill_neuron_row(r, to, s);
    }
  }
}

void DrawnExpert::fill_neuron_row(int64_t r, std::byte* to, Scratch& s) const {
  const RawMatrix& dense = *spec_.dense;
  const std::byte* from = dense.bytes.data() + size_t(spec_.neurons[size_t(r)] * spec_.D) * dtype_size(dense.dtype);
  const bool drawn = in_S_[size_t(r)];
  if (verbatim_ && !drawn) {
    std::memcpy(to, from, row_bytes());
    quiet_nans(to, size_t(spec_.D), spec_.out);
    return;
  }
  float* row = s.row.data();
  if (drawn) {  // the whole row is re-drawn: counters r·D … r·D + D − 1
    values_.fill_standard_normal(s.z.data(), uint64_t(r * spec_.D), s.z.size());
    if (spec_.init.init == ExpertInit::kNoise) convert_floats(from, dense.dtype, row, DType::kF32, size_t(spec_.D));
    for (int64_t d = 0; d < spec_.D; ++d) row[d] = redrawn(row[d], s.z[size_t(d)]);
  } else {
    convert_floats(from, dense.dtype, row, DType::kF32, size_t(spec_.D));
  }
  finish_row(r, row, to, s);
}

void DrawnExpert::fill_down_row(int64_t d, std::byte* to, Scratch& s) const {
  const RawMatrix& dense = *spec_.dense;
  const size_t size = dtype_size(dense.dtype), W = size_t(spec_.width), count = S_.size();
  const std::byte* from = dense.bytes.data() + size_t(d * dense.cols) * size;
  s.values.resize(count);
  if (count > 0) {
    const uint64_t base = uint64_t(d * spec_.width);
    // Many re-drawn columns: drawing the whole row (contiguous, vectorised) is cheaper than listing their
    // pairs — for v2; v1's scalar draws cost more than the listing saves.
    if (spec_.init.rng_version == RngVersion::kV2 && 4 * count >= W) {
      values_.fill_standard_normal(s.z.data(), base, W);
      for (size_t k = 0; k < count; ++k) s.values[k] = s.z[size_t(S_[k])];
    } else {
      normals_at(values_, base, S_, s.values.data(), s.pairs, s.pair_z);
    }
    if (spec_.init.init == ExpertInit::kNoise) {  // the re-drawn columns' dense values, in fp32
      s.stored.resize(count * size);
      for (size_t k = 0; k < count; ++k)
        std::memcpy(s.stored.data() + k * size, from + size_t(spec_.neurons[size_t(S_[k])]) * size, size);
      convert_floats(s.stored.data(), dense.dtype, s.row.data(), DType::kF32, count);
    }
    for (size_t k = 0; k < count; ++k) s.values[k] = redrawn(s.row[k], s.values[k]);
  }
  if (verbatim_) {  // kept columns as stored; the re-drawn ones converted and put in their places
    gather_row(from, to);
    quiet_nans(to, W, spec_.out);
    s.stored.resize(count * size);
    convert_floats(s.values.data(), DType::kF32, s.stored.data(), spec_.out, count);
    for (size_t k = 0; k < count; ++k) std::memcpy(to + size_t(S_[k]) * size, s.stored.data() + k * size, size);
    return;
  }
  s.stored.resize(W * size);
  gather_row(from, s.stored.data());
  convert_floats(s.stored.data(), dense.dtype, s.row.data(), DType::kF32, W);
  for (size_t k = 0; k < count; ++k) s.row[size_t(S_[k])] = s.values[k];
  finish_row(d, s.row.data(), to, s);
}

void DrawnExpert::gather_row(const std::byte* from, std::byte* to) const {
  const size_t size = dtype_size(spec_.dense->dtype);
  if (contiguous_) return void(std::memcpy(to, from + size_t(spec_.neurons[0]) * size, spec_.neurons.size() * size));
  gather_elements(from, spec_.neurons, to, size);
}

void DrawnExpert::finish_row(int64_t r, float* row, std::byte* to, Scratch& s) const {
  const size_t n = size_t(cols());
  if (spec_.noise) {  // mergekit: W + σ_e·z first, then the scale (noise_and_scale)
    spec_.noise->fill_standard_normal(s.z.data(), uint64_t(r) * n, n);
    for (size_t c = 0; c < n; ++c) row[c] += spec_.noise_std * s.z[c];
  }
  if (spec_.scale != 1.0) {
    const float f = float(spec_.scale);
    for (size_t c = 0; c < n; ++c) row[c] *= f;
  }
  convert_floats(row, DType::kF32, to, spec_.out, n);
}

}  // namespace upcycle::recipes
