// Pre-tokenization of tokenizer.json: a sequence of steps, each refining a list of text pieces
// (byte ranges are never reordered or dropped, except by Split "Removed"). Supported steps: Split
// (regex or literal pattern, behaviours Isolated and Removed, invert false), ByteLevel
// (add_prefix_space, use_regex with GPT-2's pattern; it always ends with the byte → stand-in
// mapping), and Digits. Regexes are the Oniguruma patterns HF ships, run by PCRE2 (UTF + UCP, JIT)
// after one rewrite: \s and \S become explicit Unicode White_Space classes, since PCRE2's \s lacks
// U+0085 where Oniguruma's has it. Non-goals: Metaspace, Whitespace, Punctuation, BertPreTokenizer.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace upcycle::data {

// A compiled PCRE2 regex (movable, shareable across threads: matching allocates its own data).
class Regex {
 public:
  enum class Literal { kNo, kYes };
  // Throws Error(file) when the pattern does not compile.
  Regex(std::string_view pattern, Literal literal, const std::string& file);
  // Appends [start, end) byte ranges of successive non-overlapping, non-empty matches in text.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  struct Compiled;
  std::shared_ptr<const Compiled> compiled_;
};

// Rewrites an Oniguruma pattern's \s / \S into explicit White_Space classes (see the file comment).
std::string rewrite_white_space_classes(std::string_view pattern);

enum class SplitBehavior { kIsolated, kRemoved };

struct PreTokenizeStep {
  enum class Kind { kSplit, kByteLevel, kDigits };
  Kind kind = Kind::kSplit;
  std::shared_ptr<const Regex> regex;  // kSplit, and kByteLevel with use_regex
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool add_prefix_space = false;       // kByteLevel
  bool individual_digits = false;      // kDigits
};

// The whole pre_tokenizer; byte_level() is true when a ByteLevel step is present.
class PreTokenizer {
 public:
  PreTokenizer() = default;
  explicit PreTokenizer(std::vector<PreTokenizeStep> steps) : steps_(std::move(steps)) {}
  bool byte_level() const;
  // Splits one piece of normalized text into pre-tokens (byte-level mapped when byte_level()).
  std::vector<std::string> run(std::string_view text) const;

 private:
  std::vector<PreTokenizeStep> steps_;
};

// GPT-2's pre-tokenization pattern (ByteLevel use_regex).
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace upcycle::data
