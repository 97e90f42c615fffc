// Weight-space similarity of experts (docs/study.md, "`upcycle analyze`"), two kinds:
//  * ordered: cosines between experts' parameters in storage order, each expert taken as the
//    concatenation of its flattened gate_proj, up_proj and down_proj. Cheap, but an FFN
//    y = W_down·(silu(W_gate x) ⊙ W_up x) is invariant under permuting its F hidden neurons, and a
//    neuron-permuted copy (`--expert-split shuffled`) reads near 0 here although it is the same function.
//  * neuron-matched (permutation-invariant, what analyze reports): neuron i of an FFN is the vector
//    n_i = [gate_row_i; up_row_i; down_col_i] (3·D values); matched(a→b) = mean over neurons i of a of
//    max over neurons j of b of cos(n_a_i, n_b_j); matched(a, b) = (matched(a→b) + matched(b→a)) / 2.
//    Identical or permuted copies give exactly 1 (identical vectors give bit-identical dot products and
//    norms, and cos = dot / √(|a|²·|b|²) is then exactly 1); unrelated neurons give the small max of
//    random cosines. Widths may differ (fine-grained experts vs the dense FFN): every query neuron
//    searches all of the other FFN's neurons. Cost O(F_a·F_b·D) per direction; with more than
//    `max_neurons` query neurons, only an evenly spaced subsample of them, i_k = ⌊k·F/max_neurons⌋ for
//    k = 0…max_neurons−1, is averaged (deterministic; every j is still searched).
// Pure functions over float spans, fp64 accumulation per dot product; vectors are given as pieces or
// as row-major views, so no concatenated copy of an expert is made (only each FFN's down_proj is
// transposed once, so a neuron's down column is contiguous). Convention: a zero-norm vector has
// cosine 0 with everything (no direction). Non-goals: sign/scale-invariant matching, optimal
// one-to-one assignment (Hungarian): max-matching is enough to see copies, drops and drift.
// Shape legend: E experts, F hidden neurons of one FFN, D model width.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace upcycle::analysis {

// ---- ordered (storage-order) cosines ----

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

// ---- neuron-matched (permutation-invariant) similarity ----

inline constexpr int64_t kDefaultMaxNeurons = 512;  // query neurons averaged per direction at most

// One SwiGLU FFN as stored: gate_FD and up_FD are [F, D] row-major, down_DF is [D, F] row-major.
struct FfnView {
  std::span<const float> gate_FD, up_FD, down_DF;
  int64_t F = 0, D = 0;
};

// The query neurons one direction averages over: all F when F ≤ max_neurons, else ⌊k·F/max_neurons⌋.
std::vector<int64_t> query_neurons(int64_t F, int64_t max_neurons);

// matched(a→b): mean over (sampled) neurons of a of the best cosine with any neuron of b.
double matched_similarity_one_way(const FfnView& a, const FfnView& b, int64_t max_neurons = kDefaultMaxNeurons);
// (matched(a→b) + matched(b→a)) / 2; one pass over the F_a×F_b cosines when neither side is sampled.
double matched_similarity(const FfnView& a, const FfnView& b, int64_t max_neurons = kDefaultMaxNeurons);
// E×E matrix of matched similarities (symmetric; diagonal 1 unless an expert is all zeros).
std::vector<std::vector<double>> matched_similarity_matrix_EE(const std::vector<FfnView>& experts,
                                                              int64_t max_neurons = kDefaultMaxNeurons);
// Each expert vs one reference FFN (the dense one): symmetric when the widths are equal, else the
// one-directional expert→reference value (a fine-grained expert is a part of the dense FFN, so the
// dense FFN's other neurons finding no partner in it says nothing about drift). E entries.
std::vector<double> matched_similarity_to(const std::vector<FfnView>& experts, const FfnView& reference,
                                          int64_t max_neurons = kDefaultMaxNeurons);

}  // namespace upcycle::analysis
