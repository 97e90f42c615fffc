// Data-driven router init after LLaMA-MoE v2 (Qu et al. 2024, arXiv 2411.15708; its
// get_gates/hidden_feature_clustering.py): the router rows of MoE layer l are the k-means centroids
// of the dense model's FFN inputs at layer l (the post-attention RMSNorm output: what the router of
// an HF Mixtral/Qwen MoE block multiplies) over calibration text, one centroid per expert.
// Choices (docs/recipes.md, "k-means router"): cosine k-means (kmeans.h) rather than LLaMA-MoE v2's
// size-constrained L2 k-means, because with unit centroids the top-1 expert of a calibration token IS
// its cluster; each row is the unit centroid times row_norm (the caller passes std·√D, the expected
// norm of a N(0, std²) row, so logits have the size of the default random router's).
// Calibration: BOS (when the tokenizer has one) + the file's text, tokenized with the base model's
// tokenizer.json, cut to max_tokens, run in sequences of kCalibrationSeqLen tokens (fp32, cpu).
// Deterministic for (seed, thread count): k-means does not depend on threads; the forward is the
// engine's (bitwise per thread count).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "model/transformer.h"

namespace upcycle::recipes {

inline constexpr int64_t kCalibrationSeqLen = 512;

// Rows [layers.size()][E·D] (float) for the given layers of the dense `base`, from token ids that
// lie in the vocabulary; needs tokens.size() ≥ E (UPCYCLE_CHECK). Layer l's k-means uses the stream
// "model.layers.{l}.router.kmeans" of `seed`.
std::vector<std::vector<float>> kmeans_router_rows(model::Transformer& base, std::span<const int32_t> tokens,
                                                   int64_t E, std::span<const int64_t> layers, uint64_t seed,
                                                   double row_norm);

// BOS (when the tokenizer has one) + `calibration` tokenized with base/tokenizer.json, cut to max_tokens.
// Throws Error labelled with the calibration file when it cannot be read, is not UTF-8, gives fewer than
// min_tokens tokens ("… fewer than the {min_what}") or an id outside base's vocabulary.
std::vector<int32_t> calibration_token_ids(const std::filesystem::path& base, const std::filesystem::path& calibration,
                                           int64_t max_tokens, int64_t min_tokens, const std::string& min_what);

// The same from files: loads the dense checkpoint `base` in fp32 and tokenizes `calibration` (a UTF-8
// text file). Throws Error labelled with the calibration file when it cannot be read or gives fewer
// than E tokens.
std::vector<std::vector<float>> kmeans_router_rows_from_files(const std::filesystem::path& base,
                                                              const std::filesystem::path& calibration,
                                                              int64_t max_tokens, int64_t E,
                                                              std::span<const int64_t> layers, uint64_t seed,
                                                              double row_norm);

}  // namespace upcycle::recipes
