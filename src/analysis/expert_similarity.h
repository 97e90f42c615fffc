// Weight-space similarity of experts: cosines between experts' parameters, each expert taken as the
// concatenation of its flattened gate_proj, up_proj and down_proj (docs/study.md). Upcycled copies
// start at cosine 1 with each other and with the dense FFN; training (or drop/noise init) lowers it.
// Pure functions over float spans, fp64 accumulation; a vector is given as pieces so no concatenated
// copy is made. Convention: a zero-norm vector has cosine 0 with everything (no direction).
// Shape legend: E experts.
#pragma once

#include <optional>
#include <span>
#include <vector>

namespace upcycle::analysis {

// The pieces of one weight vector, concatenated in order (e.g. {gate, up, down} of an expert).
using WeightPieces = std::vector<std::span<const float>>;

double dot_product(const WeightPieces& a, const WeightPieces& b);  // pieces must match in sizes
double cosine_similarity(std::span<const float> a, std::span<const float> b);
double cosine_similarity(const WeightPieces& a, const WeightPieces& b);

// E×E matrix of cosines between the experts (diagonal 1 unless an expert is all zeros).
std::vector<std::vector<double>> similarity_matrix_EE(const std::vector<WeightPieces>& experts);
// Mean of the off-diagonal entries; nullopt for fewer than 2 experts.
std::optional<double> mean_off_diagonal(const std::vector<std::vector<double>>& matrix_EE);
// Cosine of each expert with one reference vector (the dense FFN), E entries.
std::vector<double> similarity_to(const std::vector<WeightPieces>& experts, const WeightPieces& reference);

}  // namespace upcycle::analysis
