// A minimal real tokenizer.json for end-to-end tests that need text: byte-level BPE with one token
// per byte (ids 0..255, GPT-2's byte alphabet, no merges), so any text encodes to ids < 256 and a
// model needs vocab_size ≥ 256. Header-only.
#pragma once

#include <filesystem>

#include "core/json.h"
#include "data/byte_level_bpe.h"
#include "support/test_support.h"

namespace upcycle::test {

inline constexpr int64_t kByteTokenizerVocab = 256;

inline void write_byte_tokenizer(const std::filesystem::path& dir) {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[data::byte_to_unicode(uint8_t(b))] = b;
  const Json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  Json tok = {{"version", "1.0"},
              {"added_tokens", Json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", byte_level},
              {"post_processor", nullptr},
              {"decoder", byte_level},
              {"model",
               {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab},
                {"merges", Json::array()}}}};
  write_bytes(dir / "tokenizer.json", tok.dump());
}

}  // namespace upcycle::test
