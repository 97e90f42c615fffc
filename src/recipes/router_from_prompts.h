// Router initialisation with mergekit-moe's gate modes (mergekit/moe/router.py, systems.md §2.2):
// per layer l an [E, D] matrix whose row e steers tokens towards expert e.
//   hidden / hidden_last: the base model's residual stream entering layer l (HF output_hidden_states[l])
//     at each prompt's last token, averaged over the expert's positive prompts, minus the same average
//     over its negative prompts when it has any, L2-normalised (norm clamped at 1e-8 as mergekit does).
//   hidden_avg: the same with each prompt's mean over its tokens instead of its last token.
//   cheap_embed: v(P) = normalise(Σ over prompts and tokens of the embedding rows); the row is
//     normalise(v(pos) − v(neg)) (or v(pos) without negatives), the same for every layer.
//   random: N(0, 1); uniform_random: U(−1/√D, 1/√D) (torch.nn.Linear's default); prompts unused.
// Differences from mergekit, by design: each prompt runs as its own sequence, unpadded, in fp32.
// mergekit batches an expert's prompts with LEFT padding (harmless for the last token: RoPE attention
// sees relative positions only, pads are masked) but its hidden_avg then averages over the pad
// positions too; and it runs the model in bf16, so rows agree to bf16 precision (docs/formats.md,
// Interop). Random modes draw CounterRng(seed, "model.layers.{l}.router")
// element e·D+d, so rows never depend on thread count; they do not reproduce torch's generator.
// The caller tokenizes prompts (BOS + text, no other special tokens, as mergekit does).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/model_config.h"
#include "model/transformer.h"

namespace upcycle::recipes {

enum class GateMode { kHidden, kHiddenAvg, kHiddenLast, kCheapEmbed, kRandom, kUniformRandom };

std::string_view gate_mode_name(GateMode mode);  // mergekit spelling: "hidden_avg", ...
std::optional<GateMode> gate_mode_from_name(std::string_view name);
bool gate_mode_uses_prompts(GateMode mode);  // hidden*, cheap_embed

// One expert's prompts as token ids (each non-empty).
struct ExpertPrompts {
  std::vector<std::vector<int32_t>> positive, negative;
};

// Router rows for every layer: result[l] is [E, D] row-major, E = experts.size(). Prompt modes run
// `base` (a dense model) forward once per prompt; random modes read only its config. Throws Error
// labelled with `label_file` for an expert without positive prompts, an empty prompt or a token id
// outside the vocabulary (prompt modes only).
std::vector<std::vector<float>> router_from_prompts(model::Transformer& base, GateMode mode,
                                                    std::span<const ExpertPrompts> experts, uint64_t seed,
                                                    const std::string& label_file = {});

// cheap_embed from embedding rows alone: `embed_row(id, row_D)` writes token id's fp32 embedding row.
// Only the prompts' tokens are read, so the [V, D] table need not be in memory (mergekit_spec reads
// the rows from the checkpoint). Same rows and errors as router_from_prompts in cheap_embed mode.
using EmbedRowReader = std::function<void(int32_t id, float* row_D)>;
std::vector<std::vector<float>> cheap_embed_router_rows(const ModelConfig& config,
                                                        std::span<const ExpertPrompts> experts,
                                                        const EmbedRowReader& embed_row,
                                                        const std::string& label_file = {});

// The random modes alone: [L][E·D].
std::vector<std::vector<float>> random_router_rows(const ModelConfig& config, int64_t num_experts, GateMode mode,
                                                   uint64_t seed);

// 2-norm condition number σ_max/σ_min of an [E, D] matrix (the min(E, D) singular values, as
// torch.linalg.cond), from the eigenvalues of the smaller Gram matrix (G·Gᵀ or Gᵀ·G) by cyclic
// Jacobi in double. Infinity when σ_min is 0.
double condition_number(std::span<const float> g_ED, int64_t E, int64_t D);
// mergekit's warn_degenerate_gates: the layers whose gate has cond > threshold, as one warning line
// ("layers 0 and 3 have degenerate routing parameters - ..."); nullopt when none does.
std::optional<std::string> degenerate_gate_warning(const std::vector<std::vector<float>>& gates, int64_t E, int64_t D,
                                                   double threshold = 5.0);

// Symmetric eigenvalues (ascending) of an n×n row-major matrix, cyclic Jacobi. Exposed for tests.
std::vector<double> symmetric_eigenvalues(std::vector<double> a_NN, int64_t n);

}  // namespace upcycle::recipes
