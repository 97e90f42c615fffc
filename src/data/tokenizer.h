// Hugging Face tokenizer.json, byte-level BPE flavour (GPT-2, Llama-3, Qwen2/2.5/3), encoding and
// decoding exactly as HF tokenizers does. Pipeline of encode(): split the text on added tokens
// (leftmost-longest; lstrip/rstrip/single_word as HF; non-normalized tokens matched on the raw
// text, normalized ones on the normalized rest) → normalizer (NFC/NFD/NFKC/NFKD, Sequence) →
// pre_tokenizer (pre_tokenizer.h) → BPE (byte_level_bpe.h) → post_processor (TemplateProcessing,
// only with AddSpecial::kYes). decode() maps ids back to tokens (unknown ids are dropped, as HF
// does) and the ByteLevel decoder turns them into bytes, then lossy UTF-8. Anything else in the file
// (Unigram/WordPiece models, byte_fallback, Metaspace, ...) is refused at load with an Error naming
// the feature and the file. Text input must be valid UTF-8 (an Error says where it is not). A
// Tokenizer is cheap to copy (shared, immutable state) and safe to use from several threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace upcycle::data {

enum class AddSpecial { kNo, kYes };   // kYes: apply tokenizer.json's post_processor (e.g. Llama-3 BOS)
enum class SkipSpecial { kNo, kYes };  // decode: drop special added tokens

class Tokenizer {
 public:
  // Reads tokenizer.json (a file, or a model directory containing tokenizer.json; also reads
  // tokenizer_config.json beside it when present for bos/eos). Throws upcycle::Error naming the file
  // for malformed JSON or unsupported features.
  static Tokenizer load(const std::filesystem::path& path);

  std::vector<int32_t> encode(std::string_view text, AddSpecial add = AddSpecial::kNo) const;
  std::string decode(std::span<const int32_t> ids, SkipSpecial skip = SkipSpecial::kNo) const;
  int64_t vocab_size() const;  // highest id + 1 over vocab and added tokens
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // throws Error for out-of-range ids (and unused ids)
  std::optional<int32_t> bos_id() const;      // from tokenizer_config.json bos_token, else none
  std::optional<int32_t> eos_id() const;      // from tokenizer_config.json eos_token, else none
  // The tokenizer.json this was loaded from (for error messages of callers).
  const std::filesystem::path& file() const;

  struct State;  // defined in tokenizer_state.h

 private:
  explicit Tokenizer(std::shared_ptr<const State> state) : state_(std::move(state)) {}
  std::shared_ptr<const State> state_;
};

}  // namespace upcycle::data
