// From a mergekit-moe plan (mergekit_config.h) to the converter's ConvertSpec (convert_spec.h):
// every layer MoE (mergekit writes decoder_sparse_step 1 / every Mixtral layer), routing renormalised
// over the top-k (mergekit writes Mixtral, and norm_topk_prob true for its Qwen writers), one expert
// per YAML entry with its source, noise_scale and residual_scale, the shared expert from its source
// (G = 1: the full dense FFN) and router rows from the gate mode. Prompt gate modes tokenize each
// prompt with the base model's tokenizer.json as BOS + text (no other special tokens, as mergekit);
// hidden modes run the base model through the engine (fp32, cpu backend: it must fit in memory as
// fp32), cheap_embed reads only the prompts' embedding rows from the checkpoint.
#pragma once

#include <string>
#include <vector>

#include "recipes/convert_spec.h"
#include "recipes/mergekit_config.h"

namespace upcycle::recipes {

// Everything except the router rows (router_init is left kGiven with no rows).
ConvertSpec convert_spec_from_mergekit(const MoePlan& plan);

// Router rows [L][E·D] for every layer of the dense model in `base` from per-expert prompts (prompt
// gate modes: tokenized with base/tokenizer.json, the model run in fp32) or seeded random rows.
std::vector<std::vector<float>> router_rows_for_experts(const std::filesystem::path& base, GateMode mode,
                                                        const std::vector<PromptTexts>& experts, uint64_t seed,
                                                        const std::string& label);

// Fills spec.router_rows (and, when plan.shared_expert_gate_from_init, spec.shared_gate_rows) from
// the gate mode. Returns warning lines (mergekit's degenerate-gate check). `yaml` labels errors.
std::vector<std::string> add_mergekit_router_rows(ConvertSpec& spec, const MoePlan& plan, const std::string& yaml);

}  // namespace upcycle::recipes
