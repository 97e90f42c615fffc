// The BPE model of an HF tokenizer.json plus GPT-2's byte-level alphabet. A pre-token arrives as
// raw UTF-8 bytes, is mapped byte by byte onto printable code points (bytes_to_unicode), and is then
// merged exactly as HF tokenizers' BPE does: symbols start as single code points, the pair with
// the lowest merge rank merges first, equal ranks merge left to right, and an entry is stale when
// its pair no longer yields the same token. With ignore_merges a pre-token found whole in the vocab
// is emitted whole. Results are cached per pre-token (thread-safe). Non-goals: dropout, unk tokens,
// byte_fallback, continuing_subword_prefix / end_of_word_suffix (refused when loading).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace upcycle::data {

// GPT-2 bytes_to_unicode: byte b → the UTF-8 of its printable stand-in code point.
const std::string& byte_to_unicode(uint8_t b);
// The inverse on code points: the byte a stand-in code point denotes, or -1 for any other code point.
int byte_from_unicode(char32_t cp);
// Maps every byte of raw text onto its stand-in (the ByteLevel pre-tokenizer's last step).
std::string to_byte_level(std::string_view raw);

struct BpeMerge {
  int32_t left = 0, right = 0;
};

class BytePairModel {
 public:
  BytePairModel() = default;
  // `vocab` maps token strings (byte-level alphabet) to ids; merges are in rank order and refer to
  // tokens of the vocab (the caller has checked that both sides and their concatenation exist).
  BytePairModel(std::unordered_map<std::string, int32_t> vocab, const std::vector<BpeMerge>& merges,
                std::vector<int32_t> merged_ids, bool ignore_merges);
  BytePairModel(BytePairModel&& other) noexcept;
  BytePairModel& operator=(BytePairModel&& other) noexcept;

  // Appends the ids of one byte-level pre-token to `out`.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }

 private:
  struct MergeValue {
    uint32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, MergeValue> merges_;
  bool ignore_merges_ = false;
  // Cache of merged pre-tokens; bounded so a corpus of unique words cannot grow it without limit.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace upcycle::data
