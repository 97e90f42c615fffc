// llama.cpp's BPE pre-tokenizer names (tokenizer.ggml.pre) that upcycle maps to and from tokenizer.json,
// with the splitting llama-vocab.cpp applies for each and the flags it sets (ignore_merges, add_bos).
// The first name of each kind is the one export writes (what convert_hf_to_gguf.py writes for the
// models that use it: llama-bpe for Llama-3, qwen2, smollm, gpt-2). Internal to data/gguf_tokenizer*.
#pragma once

#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace upcycle::data {

enum class GgufSplit {
  kLlama3,      // Llama-3's regex (digits in runs of ≤ 3)
  kQwen2,       // Qwen2's regex (digits one by one)
  kDigitsGpt2,  // every \p{N} on its own, then GPT-2's regex (StarCoder, SmolLM)
  kGpt2,        // GPT-2's regex
};

struct GgufPreTokenizer {
  std::string_view name;
  GgufSplit split;
  bool ignore_merges;
  bool add_bos;  // llama.cpp's default when tokenizer.ggml.add_bos_token is absent
};

// clang-format off
inline constexpr std::array<GgufPreTokenizer, 31> kGgufPreTokenizers = {{
    {"llama-bpe", GgufSplit::kLlama3, true, true},  {"llama3", GgufSplit::kLlama3, true, true},
    {"llama-v3", GgufSplit::kLlama3, true, true},   {"falcon3", GgufSplit::kLlama3, true, true},
    {"falcon-h1", GgufSplit::kLlama3, true, true},  {"pixtral", GgufSplit::kLlama3, true, true},
    {"midm-2.0", GgufSplit::kLlama3, true, true},   {"lfm2", GgufSplit::kLlama3, true, true},
    {"smaug-bpe", GgufSplit::kLlama3, false, false}, {"dbrx", GgufSplit::kLlama3, false, false},
    {"qwen2", GgufSplit::kQwen2, false, false},     {"deepseek-r1-qwen", GgufSplit::kQwen2, false, false},
    {"megrez", GgufSplit::kQwen2, false, false},    {"stablelm2", GgufSplit::kQwen2, false, false},
    {"smollm", GgufSplit::kDigitsGpt2, false, false},  {"starcoder", GgufSplit::kDigitsGpt2, false, false},
    {"refact", GgufSplit::kDigitsGpt2, false, false},  {"command-r", GgufSplit::kDigitsGpt2, false, false},
    {"codeshell", GgufSplit::kDigitsGpt2, false, false}, {"exaone", GgufSplit::kDigitsGpt2, false, false},
    {"minerva-7b", GgufSplit::kDigitsGpt2, false, false},
    {"gpt-2", GgufSplit::kGpt2, false, false},      {"phi-2", GgufSplit::kGpt2, false, false},
    {"mpt", GgufSplit::kGpt2, false, false},        {"olmo", GgufSplit::kGpt2, false, false},
    {"mellum", GgufSplit::kGpt2, false, false},     {"exaone4", GgufSplit::kGpt2, false, false},
    {"gigachat", GgufSplit::kGpt2, false, false},   {"a.x-4.0", GgufSplit::kGpt2, false, false},
    {"trillion", GgufSplit::kGpt2, false, false},   {"granite-docling", GgufSplit::kGpt2, false, false},
}};
// clang-format on

// The tokenizer.json pre_tokenizer for a split, as the models' own files spell it.
nlohmann::ordered_json gguf_pre_tokenizer_json(GgufSplit split);
// The split a tokenizer.json pre_tokenizer is (compared with what gguf_pre_tokenizer_json writes,
// ignoring trim_offsets, which only affects offsets), or none.
std::optional<GgufSplit> gguf_split_of(const nlohmann::json& pre_tokenizer);

}  // namespace upcycle::data
