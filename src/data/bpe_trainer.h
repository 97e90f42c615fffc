// Byte-level BPE training: text → a Hugging Face tokenizer.json that data::Tokenizer and HF
// tokenizers load and encode identically. Two steps: BpeWordCounter pre-tokenizes documents (split
// on the special tokens, then the chosen Split regex; no normalizer) and counts each distinct
// pre-token; train_bpe() then merges, over those counts, the most frequent adjacent pair again and
// again, updating pair counts incrementally (only the words that hold the merged pair are touched).
// Invariants: ids 0..255 are the 256 bytes in byte order (GPT-2's byte_to_unicode stand-ins), merged
// tokens follow in merge order, special tokens come last; ties between equally frequent pairs go to
// the smallest (left id, right id); results are the same for any thread count. A merge whose
// concatenation is already a token (reached by another pair earlier) is kept as a merge, as HF's
// trainer does, but adds no vocab entry, so merges ≥ vocab − 256 − specials.
// Non-goals: normalizers, dropout, unk tokens, continuing-subword prefixes, alphabet limits.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/pre_tokenizer.h"

namespace upcycle::data {

// The Split regex of the pre-tokenizer (behaviour Isolated, then ByteLevel without its own regex).
enum class SplitPattern { kGpt2, kLlama3, kQwen2 };

// The exact pattern text HF ships for that family (GPT-2's ByteLevel regex; Llama-3's and
// Qwen2/2.5/3's Split regex: contractions case-insensitive, digits in runs of ≤ 3 resp. one by one).
std::string_view split_pattern_text(SplitPattern pattern);
// "gpt2" | "llama3" | "qwen2" (also the spellings the CLI accepts).
std::string_view split_pattern_name(SplitPattern pattern);

struct BpeTrainerOptions {
  int64_t vocab_size = 0;                                   // 256 bytes + merged tokens + specials
  SplitPattern pattern = SplitPattern::kLlama3;
  std::vector<std::string> special_tokens{"<|endoftext|>"};  // ids after the merged tokens, in order
  uint64_t min_frequency = 1;  // stop early when the best pair occurs fewer times than this
  int threads = 0;             // pre-tokenization threads; 0 = OpenMP's default
  size_t chunk_bytes = size_t{1} << 20;  // documents longer than this are cut for counting (≥ 1)
};

// Throws Error when the options cannot give a valid tokenizer: vocab_size < 256 + specials, an empty,
// repeated or non-UTF-8 special token, or one that is a single byte's token.
void validate_options(const BpeTrainerOptions& options);

// Hashes std::string and std::string_view alike, so counting looks pre-tokens up without copies.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
// Distinct pre-tokens (raw UTF-8 bytes, before the byte-level mapping) → occurrences.
using WordCounts = std::unordered_map<std::string, uint64_t, StringHash, std::equal_to<>>;

class BpeWordCounter {
 public:
  explicit BpeWordCounter(const BpeTrainerOptions& options);
  // Counts the pre-tokens of one document (e.g. one file). `text` must be valid UTF-8 (else an
  // Error naming `file` and the byte offset). Long documents are cut at points where no pre-token
  // can cross (a newline between a visible ASCII character and an ASCII letter) and counted in
  // parallel; `on_bytes` (optional) is told how many bytes were done as chunks finish.
  void add_document(std::string_view text, const std::string& file,
                    const std::function<void(uint64_t bytes)>& on_bytes = {});
  const WordCounts& counts() const { return counts_; }
  uint64_t pre_tokens() const { return pre_tokens_; }

 private:
  void count_chunk(std::string_view chunk, WordCounts& out, uint64_t& pre_tokens) const;
  BpeTrainerOptions options_;
  Regex regex_;
  WordCounts counts_;
  uint64_t pre_tokens_ = 0;
};

struct BpeTrainResult {
  std::vector<std::string> tokens;  // by id, in the byte-level alphabet; specials as given, last
  std::vector<std::pair<int32_t, int32_t>> merges;  // rank order; ids into `tokens`
  std::vector<int32_t> merged_ids;                  // merges[r] yields tokens[merged_ids[r]]
  int64_t specials = 0;                             // the last `specials` tokens
  bool stopped_early = false;  // fewer tokens than asked: no pair left ≥ min_frequency
  uint64_t last_count = 0;     // occurrences of the last merged pair (0 when no merge was made)
  int64_t vocab_size() const { return int64_t(tokens.size()); }
};

// Learns merges until tokens.size() == options.vocab_size or no pair occurs ≥ min_frequency times.
// `on_merge` (optional) is called after each merge with the number of tokens so far.
BpeTrainResult train_bpe(const WordCounts& words, const BpeTrainerOptions& options,
                         const std::function<void(int64_t tokens)>& on_merge = {});

// tokenizer.json text: pre_tokenizer Sequence[Split(pattern, Isolated), ByteLevel(no prefix space,
// no regex)], normalizer and post_processor null, ByteLevel decoder, BPE model (merges as [a, b]
// pairs, ignore_merges false), specials as added_tokens (special, not normalized) and in the vocab.
// Byte-identical for identical inputs (one token or merge per line, fixed key order).
std::string tokenizer_json(const BpeTrainResult& result, SplitPattern pattern);
// tokenizer_config.json text naming the EOS (the first special token; null without specials) so that
// Tokenizer::eos_id() finds it; bos_token null, PreTrainedTokenizerFast for transformers.
std::string tokenizer_config_json(const BpeTrainResult& result);

}  // namespace upcycle::data
