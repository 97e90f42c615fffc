// The parsed form of a tokenizer.json that Tokenizer shares between copies; private to src/data
// (tokenizer.cpp encodes/decodes with it, tokenizer_load.cpp builds it from the JSON).
#pragma once

#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/byte_level_bpe.h"
#include "data/pre_tokenizer.h"
#include "data/tokenizer.h"
#include "data/unicode_text.h"

namespace upcycle::data {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = true;
};

// Leftmost-longest matching over a set of added tokens (what HF's Aho-Corasick with
// MatchKind::LeftmostLongest finds): candidates are bucketed by first byte, longest first.
struct AddedTokenMatcher {
  struct Entry {
    std::string text;  // the content as matched (normalized content for normalized tokens)
    size_t token = 0;  // index into State::added
  };
  std::array<std::vector<Entry>, 256> by_first_byte;
  bool empty = true;
};

enum class DecoderKind { kNone, kByteLevel };

struct Tokenizer::State {
  std::filesystem::path file;
  BytePairModel bpe;
  std::vector<std::string> vocab_by_id;  // "" where no vocab token has that id
  std::vector<uint8_t> has_vocab_id;
  std::vector<AddedToken> added;
  std::unordered_map<std::string, size_t> added_by_content;
  std::unordered_map<int32_t, size_t> added_by_id;
  AddedTokenMatcher raw_matcher, normalized_matcher;
  std::vector<NormalForm> normalizers;
  PreTokenizer pre_tokenizer;
  std::vector<int32_t> template_prefix, template_suffix;  // post_processor ids around $A
  DecoderKind decoder = DecoderKind::kNone;
  int64_t vocab_size = 0;
  std::optional<int32_t> bos, eos;
};

}  // namespace upcycle::data
