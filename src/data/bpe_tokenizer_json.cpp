// tokenizer.json / tokenizer_config.json text for a trained BPE (see bpe_trainer.h). Written by hand
// rather than through a JSON object so the vocab and merges come one entry per line in id / rank
// order (diffable, byte-identical across runs) and a 100k vocab needs no ordered-map inserts.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/bpe_trainer.h"

namespace upcycle::data {
namespace {

using Plain = nlohmann::ordered_json;  // keys in the order written ("type" first, as HF writes)

std::string quoted(const std::string& s) { return Plain(s).dump(); }

std::string added_token(const std::string& content, int64_t id) {
  // Specials match on the raw text (normalized false) and are skipped by decode(skip_special).
  return "{\"id\": " + std::to_string(id) + ", \"content\": " + quoted(content) +
         ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}";
}

}  // namespace

std::string tokenizer_json(const BpeTrainResult& r, SplitPattern pattern) {
  UPCYCLE_CHECK(r.merges.size() == r.merged_ids.size() && r.specials <= r.vocab_size(), "inconsistent BPE result");
  const Plain split = {{"type", "Split"},
                       {"pattern", {{"Regex", std::string(split_pattern_text(pattern))}}},
                       {"behavior", "Isolated"},
                       {"invert", false}};
  const Plain byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  const Plain pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", {split, byte_level}}};

  std::string out = "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [";
  const int64_t first_special = r.vocab_size() - r.specials;
  for (int64_t id = first_special; id < r.vocab_size(); ++id)
    out += (id == first_special ? "\n    " : ",\n    ") + added_token(r.tokens[size_t(id)], id);
  out += r.specials ? "\n  ],\n" : "],\n";
  out += "  \"normalizer\": null,\n";
  out += "  \"pre_tokenizer\": " + pre_tokenizer.dump() + ",\n";
  out += "  \"post_processor\": null,\n";
  out += "  \"decoder\": " + byte_level.dump() + ",\n";
  out += "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
         "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
         "    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n    \"vocab\": {";
  for (size_t id = 0; id < r.tokens.size(); ++id)
    out += (id ? ",\n      " : "\n      ") + quoted(r.tokens[id]) + ": " + std::to_string(id);
  out += "\n    },\n    \"merges\": [";
  for (size_t k = 0; k < r.merges.size(); ++k)
    out += (k ? ",\n      [" : "\n      [") + quoted(r.tokens[size_t(r.merges[k].first)]) + ", " +
           quoted(r.tokens[size_t(r.merges[k].second)]) + "]";
  out += r.merges.empty() ? "]\n  }\n}\n" : "\n    ]\n  }\n}\n";
  return out;
}

std::string tokenizer_config_json(const BpeTrainResult& r) {
  // The EOS is the first special token: `upcycle data tokenize` separates documents with it.
  const std::string eos = r.specials ? quoted(r.tokens[size_t(r.vocab_size() - r.specials)]) : "null";
  return "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"bos_token\": null,\n  \"eos_token\": " + eos +
         ",\n  \"clean_up_tokenization_spaces\": false\n}\n";
}

}  // namespace upcycle::data
