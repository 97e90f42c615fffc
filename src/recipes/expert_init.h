// Initialising one routed expert's matrix in fp32 from its dense slice. The neuron axis is the
// intermediate one: rows of gate [F',D] and up [F',D], columns of down [D,F'].
//   copy   (Komatsuzaki et al. 2022, arXiv 2212.05055): W̃ = W.
//   noise  (Drop-Upcycling's RNU baseline, arXiv 2502.19261 §4): W̃ = W + I_S ⊙ N(0, σ_n²).
//   drop   (Drop-Upcycling, arXiv 2502.19261 §3): W̃ = I_S ⊙ R + (1 − I_S) ⊙ W, R ~ N(μ_t, σ_t²), with
//          μ_t, σ_t the mean/std of the dense matrix t (DropStats::kMatrix) or of the replaced slice
//          (kSlice, as the released code does).
//   random (MoE-from-scratch baseline): W̃ ~ N(0, initializer_range²), drawn like `upcycle init`.
// S ⊂ {0..F'−1} has exactly ⌊r·F'⌋ neurons (⌊·⌋ of r·F' + 1e-9, so r = 0.3 of 10 is 3), uniformly
// without replacement; DropScope::kNeuron uses one S_e for gate, up and down (the paper's wording),
// kMatrix draws one per matrix (the released code). Randomness: CounterRng(seed, "<prefix>.neurons")
// or "<prefix>.<matrix>.neurons" for S; "<prefix>.<matrix>.values" counter = row-major index for R
// and noise; random uses the output tensor's own name, as write_random_weights does. Normals are of
// stream version p.rng_version (core/rng.h), the neuron sets S of bits, the same under every version.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/rng.h"
#include "recipes/convert_spec.h"
#include "recipes/source_models.h"

namespace upcycle::recipes {

enum class FfnMatrix { kGate, kUp, kDown };
std::string_view ffn_matrix_name(FfnMatrix m);  // "gate", "up", "down"

struct MatrixStats {
  double mean = 0, std = 0;  // population std (torch .std() is unbiased; the difference is 1/n)
};
MatrixStats matrix_stats(const float* w, size_t n);
MatrixStats matrix_stats(const RawMatrix& dense);  // the same figures, from the matrix as stored

struct ExpertInitParams {
  ExpertInit init = ExpertInit::kCopy;
  double ratio = 0.5;
  DropScope scope = DropScope::kNeuron;
  DropStats stats = DropStats::kMatrix;
  double noise_std = 0.02;
  double init_std = 0.02;  // random: the config's initializer_range
  uint64_t seed = 0;
  RngVersion rng_version = RngVersion::kV2;  // of the normals (R, noise, random); S is version-free
};

int64_t reinit_count(double ratio, int64_t width);  // ⌊r·F'⌋
// The neuron set S for one expert matrix (sorted), as init_expert_matrix draws it.
std::vector<int64_t> reinit_neurons(const ExpertInitParams& p, std::string_view prefix, FfnMatrix m, int64_t width);

// Mean and population std over the neurons S, summed neuron by neuron in the order of S, each neuron's D
// values in order (`neuron(j, out)` writes neuron j's values): drop's slice statistics.
MatrixStats neuron_stats(const std::vector<int64_t>& S, int64_t D, const std::function<void(int64_t, float*)>& neuron);
// z[k] = values.normal(base + S[k]) for the sorted columns S of one row: one Box–Muller draw per pair of
// counters, shared by neighbouring columns (batched, which v2 vectorises). pairs, pair_z: scratch.
void normals_at(const CounterRng& values, uint64_t base, const std::vector<int64_t>& S, float* z,
                std::vector<uint64_t>& pairs, std::vector<float>& pair_z);

// The whole-matrix form of drawn_expert.h, for tests and the profile:
// w: the expert's matrix copied from the dense one ([F',D] for gate/up, [D,F'] for down), modified in
// place. `dense` = stats of the whole dense matrix; `prefix` names the expert ("layer3.expert5");
// `tensor_name` is the output tensor (for random).
void init_expert_matrix(float* w, int64_t width, int64_t D, FfnMatrix m, const ExpertInitParams& p, MatrixStats dense,
                        std::string_view prefix, std::string_view tensor_name);

}  // namespace upcycle::recipes
