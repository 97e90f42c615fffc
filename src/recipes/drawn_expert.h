// A computed expert matrix (drop, noise, random experts, mergekit's per-expert noise) produced a block of
// rows at a time, straight from the dense matrix as stored into the output dtype: no expert-sized fp32
// buffer is written and read again, and the caller may fill blocks on several threads at once.
// Per element, in this order (expert_init.h has the recipes' equations): the recipe's value (the dense
// value, re-drawn, noised, or drawn from scratch), + σ_e·z of mergekit's noise, × float(scale), then the
// output dtype — the same float operations as the whole-matrix fp32 route before it, so the same bytes.
// Elements that keep their dense value unscaled in the stored dtype are copied as they are (NaNs quietened
// as an fp32 round trip quietens them; neuron_gather.h): only re-drawn neurons go through fp32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/rng.h"
#include "recipes/expert_init.h"
#include "recipes/source_models.h"

namespace upcycle::recipes {

struct DrawnExpertSpec {
  const RawMatrix* dense = nullptr;  // as stored, [F, D] or [D, F] for down; nullptr for random experts
  FfnMatrix m = FfnMatrix::kGate;
  std::vector<int64_t> neurons;      // the dense neurons the expert takes, in order (random: unused)
  int64_t width = 0, D = 0;          // the expert is [width, D] (gate/up) or [D, width] (down)
  ExpertInitParams init;
  MatrixStats stats;                 // drop with DropStats::kMatrix: of the whole dense matrix
  std::string prefix;                // "layer3.expert5": names the streams (expert_init.h)
  std::string tensor_name;           // the output tensor: random experts' stream
  std::optional<CounterRng> noise;   // mergekit's per-expert noise stream, with σ_e = noise_std
  float noise_std = 0;
  double scale = 1;
  DType out = DType::kBF16;
};

class DrawnExpert {
 public:
  // Draws the neuron set S, and the slice statistics when drop asks for them.
  explicit DrawnExpert(DrawnExpertSpec spec);
  int64_t rows() const { return spec_.m == FfnMatrix::kDown ? spec_.D : spec_.width; }
  size_t row_bytes() const { return size_t(cols()) * dtype_size(spec_.out); }
  // Rows [first, first + count) in the output dtype, row-major into out (count · row_bytes() bytes).
  // Each element depends on its index alone: any split of the rows over any threads gives the same bytes.
  void fill(int64_t first, int64_t count, std::byte* out) const;

 private:
  struct Scratch;
  int64_t cols() const { return spec_.m == FfnMatrix::kDown ? spec_.width : spec_.D; }
  void fill_neuron_row(int64_t r, std::byte* to, Scratch& s) const;  // gate/up: row r is neuron r
  void fill_down_row(int64_t d, std::byte* to, Scratch& s) const;    // down: row d crosses every neuron
  void finish_row(int64_t r, float* row, std::byte* to, Scratch& s) const;  // noise, scale, convert
  void gather_row(const std::byte* from, std::byte* to) const;  // a down row's expert columns, as stored
  float redrawn(float dense_value, float z) const;  // drop's or noise's value for a neuron of S

  DrawnExpertSpec spec_;
  std::vector<int64_t> S_;      // re-drawn neurons (sorted); empty for copy and random
  std::vector<char> in_S_;      // in_S_[j]: neuron j is in S_
  MatrixStats drop_stats_;      // drop: the statistics R is drawn with
  CounterRng values_;           // the recipe's normals (random: the tensor's stream)
  bool verbatim_ = false;       // unchanged elements are copied in the stored dtype
  bool contiguous_ = false;     // the neurons are one range (whole-width experts): down rows are one memcpy
};

}  // namespace upcycle::recipes
