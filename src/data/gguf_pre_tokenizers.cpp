// tokenizer.json pre_tokenizer ⇄ llama.cpp split kinds (see gguf_pre_tokenizers.h).
#include "data/gguf_pre_tokenizers.h"

#include "core/error.h"
#include "data/bpe_trainer.h"

namespace upcycle::data {
namespace {

using Plain = nlohmann::ordered_json;

Plain byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

Plain split(SplitPattern p) {
  return {{"type", "Split"}, {"pattern", {{"Regex", std::string(split_pattern_text(p))}}}, {"behavior", "Isolated"}, {"invert", false}};
}

// A comparable form: trim_offsets dropped (it changes offsets, never ids), missing flags defaulted.
nlohmann::json canonical(const nlohmann::json& p) {
  nlohmann::json c = p;
  if (c.is_object() && c.value("type", "") == "ByteLevel") {
    c.erase("trim_offsets");
    if (!c.contains("add_prefix_space")) c["add_prefix_space"] = true;  // HF's default
    if (!c.contains("use_regex")) c["use_regex"] = true;
  }
  if (c.is_object() && c.contains("pretokenizers") && c["pretokenizers"].is_array())
    for (auto& step : c["pretokenizers"]) step = canonical(step);
  return c;
}

}  // namespace

Plain gguf_pre_tokenizer_json(GgufSplit s) {
  switch (s) {
    case GgufSplit::kLlama3: return {{"type", "Sequence"}, {"pretokenizers", {split(SplitPattern::kLlama3), byte_level(false)}}};
    case GgufSplit::kQwen2: return {{"type", "Sequence"}, {"pretokenizers", {split(SplitPattern::kQwen2), byte_level(false)}}};
    case GgufSplit::kDigitsGpt2:
      return {{"type", "Sequence"}, {"pretokenizers", {Plain{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}};
    case GgufSplit::kGpt2: return byte_level(true);
  }
  UPCYCLE_CHECK(false, "unknown split");
}

std::optional<GgufSplit> gguf_split_of(const nlohmann::json& pre_tokenizer) {
  const nlohmann::json mine = canonical(pre_tokenizer);
  auto same = [&](const Plain& p) { return canonical(nlohmann::json::parse(p.dump())) == mine; };
  for (GgufSplit s : {GgufSplit::kLlama3, GgufSplit::kQwen2, GgufSplit::kDigitsGpt2, GgufSplit::kGpt2})
    if (same(gguf_pre_tokenizer_json(s))) return s;
  // GPT-2's regex spelled as a Split step before a regex-free ByteLevel (data train-tokenizer --pattern gpt2).
  if (same({{"type", "Sequence"}, {"pretokenizers", {split(SplitPattern::kGpt2), byte_level(false)}}})) return GgufSplit::kGpt2;
  return std::nullopt;
}

}  // namespace upcycle::data
