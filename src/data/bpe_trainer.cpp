// Pre-token counting and the incremental merge loop of the BPE trainer (see bpe_trainer.h); the
// tokenizer.json writer is in bpe_tokenizer_json.cpp.
#include "data/bpe_trainer.h"

#include <omp.h>

#include <algorithm>
#include <queue>

#include "core/error.h"
#include "data/byte_level_bpe.h"
#include "data/unicode_text.h"

namespace upcycle::data {
namespace {

// The Split regexes of Llama-3 and Qwen2/2.5/3 tokenizer.json, verbatim (they differ only in how
// digits group); GPT-2's is the ByteLevel regex kGpt2Pattern.
constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

bool ascii_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool ascii_visible(char c) { return c > ' ' && c < 0x7F; }

// A cut at p is safe when text[p-2] is a visible ASCII character, text[p-1] == '\n' and text[p] is
// an ASCII letter: in all three patterns no alternative matches across "\n" followed by a letter,
// and the whitespace run ending at p is exactly that newline, which every pattern matches on its own
// with or without the letter after it (the \s+(?!\S) lookahead only decides between two
// alternatives that give the same "\n"). So the pre-tokens of the pieces are those of the whole.
size_t next_cut(std::string_view text, size_t from) {
  for (size_t p = std::max<size_t>(from, 2); p < text.size(); ++p)
    if (text[p - 1] == '\n' && ascii_letter(text[p]) && ascii_visible(text[p - 2])) return p;
  return text.size();
}

std::vector<std::string_view> cut_into_chunks(std::string_view text, size_t chunk_bytes, bool allow_cuts) {
  std::vector<std::string_view> chunks;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = allow_cuts && text.size() - start > chunk_bytes ? next_cut(text, start + chunk_bytes) : text.size();
    chunks.push_back(text.substr(start, end - start));
    start = end;
  }
  return chunks;
}

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
int32_t key_left(uint64_t key) { return int32_t(key >> 32); }
int32_t key_right(uint64_t key) { return int32_t(key & 0xFFFFFFFFu); }

}  // namespace

std::string_view split_pattern_text(SplitPattern pattern) {
  switch (pattern) {
    case SplitPattern::kGpt2: return kGpt2Pattern;
    case SplitPattern::kLlama3: return kLlama3Pattern;
    case SplitPattern::kQwen2: return kQwen2Pattern;
  }
  UPCYCLE_CHECK(false, "unknown SplitPattern");
  return {};
}

std::string_view split_pattern_name(SplitPattern pattern) {
  switch (pattern) {
    case SplitPattern::kGpt2: return "gpt2";
    case SplitPattern::kLlama3: return "llama3";
    case SplitPattern::kQwen2: return "qwen2";
  }
  UPCYCLE_CHECK(false, "unknown SplitPattern");
  return {};
}

void validate_options(const BpeTrainerOptions& o) {
  const int64_t specials = int64_t(o.special_tokens.size());
  if (o.vocab_size < 256 + specials)
    throw Error("--vocab-size " + std::to_string(o.vocab_size) + " is too small: the 256 byte tokens and " +
                std::to_string(specials) + " special token(s) need at least " + std::to_string(256 + specials));
  if (o.vocab_size > INT32_MAX / 2) throw Error("--vocab-size " + std::to_string(o.vocab_size) + " is too large");
  for (size_t k = 0; k < o.special_tokens.size(); ++k) {
    const std::string& s = o.special_tokens[k];
    if (s.empty()) throw Error("special token #" + std::to_string(k + 1) + " is empty");
    if (find_invalid_utf8(s)) throw Error("special token #" + std::to_string(k + 1) + " is not valid UTF-8");
    if (std::find(o.special_tokens.begin(), o.special_tokens.begin() + ptrdiff_t(k), s) != o.special_tokens.begin() + ptrdiff_t(k))
      throw Error("special token '" + s + "' is given twice");
    size_t i = 0;
    const char32_t cp = next_code_point(s, i);
    if (i == s.size() && byte_from_unicode(cp) >= 0)
      throw Error("special token '" + s + "' is already the token of a single byte; choose a longer one");
  }
}

BpeWordCounter::BpeWordCounter(const BpeTrainerOptions& options)
    : options_(options), regex_(split_pattern_text(options.pattern), Regex::Literal::kNo, "") {
  validate_options(options_);
}

// Splits the chunk on special tokens (leftmost-longest, as the encoder does: their text never
// reaches the BPE model), then each rest into pre-tokens: regex matches and the gaps between them.
void BpeWordCounter::count_chunk(std::string_view chunk, WordCounts& out, uint64_t& pre_tokens) const {
  const auto& specials = options_.special_tokens;
  std::vector<size_t> next(specials.size());
  for (size_t k = 0; k < specials.size(); ++k) next[k] = chunk.find(specials[k]);
  std::vector<std::pair<size_t, size_t>> matches;
  const auto count = [&](std::string_view piece) {
    auto it = out.find(piece);
    if (it == out.end()) out.emplace(std::string(piece), 1);
    else ++it->second;
    ++pre_tokens;
  };
  size_t from = 0;
  while (from < chunk.size()) {
    size_t at = chunk.size(), len = 0;
    for (size_t k = 0; k < specials.size(); ++k) {
      if (next[k] != std::string_view::npos && next[k] < from) next[k] = chunk.find(specials[k], from);
      if (next[k] == std::string_view::npos) continue;
      if (next[k] < at || (next[k] == at && specials[k].size() > len)) at = next[k], len = specials[k].size();
    }
    const std::string_view text = chunk.substr(from, at - from);
    matches.clear();
    regex_.find_all(text, matches);
    size_t last = 0;
    for (auto [s, e] : matches) {
      if (s > last) count(text.substr(last, s - last));
      count(text.substr(s, e - s));
      last = e;
    }
    if (last < text.size()) count(text.substr(last));
    from = at + len;
  }
}

void BpeWordCounter::add_document(std::string_view text, const std::string& file,
                                  const std::function<void(uint64_t)>& on_bytes) {
  if (auto bad = find_invalid_utf8(text))
    throw Error("input is not valid UTF-8 (first bad byte at offset " + std::to_string(*bad) + ")", file);
  // A special token holding a newline could straddle a cut; such documents are counted whole.
  bool allow_cuts = true;
  for (const std::string& s : options_.special_tokens) allow_cuts &= s.find('\n') == std::string::npos;
  const std::vector<std::string_view> chunks = cut_into_chunks(text, std::max<size_t>(options_.chunk_bytes, 1), allow_cuts);
  const int threads = options_.threads > 0 ? options_.threads : omp_get_max_threads();
  // Batches bound memory (one map per chunk in flight); sums do not depend on the order of adding.
  const size_t batch = size_t(std::max(1, threads)) * 2;
  for (size_t first = 0; first < chunks.size(); first += batch) {
    const size_t n = std::min(batch, chunks.size() - first);
    std::vector<WordCounts> maps(n);
    std::vector<uint64_t> tokens(n, 0);
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (n > 1)
    for (size_t k = 0; k < n; ++k) count_chunk(chunks[first + k], maps[k], tokens[k]);
    uint64_t bytes = 0;
    for (size_t k = 0; k < n; ++k) {
      for (auto& [word, c] : maps[k]) counts_[word] += c;
      pre_tokens_ += tokens[k];
      bytes += chunks[first + k].size();
    }
    if (on_bytes) on_bytes(bytes);
  }
}

namespace {

// The merge loop's state. Ids of special tokens are provisional (kSpecialBase + k) until the end,
// when the number of merged tokens is known; their order relative to other ids is already final.
class MergeLoop {
 public:
  static constexpr int32_t kSpecialBase = int32_t(1) << 30;

  MergeLoop(const WordCounts& counts, const std::vector<std::string>& specials);
  // One merge of the most frequent pair; false when none occurs ≥ min_frequency times.
  bool step(uint64_t min_frequency);
  BpeTrainResult finish(bool stopped_early) const;
  int64_t tokens() const { return int64_t(tokens_.size() + specials_.size()); }

 private:
  struct Word {
    std::vector<int32_t> symbols;
    uint64_t count;
  };
  struct Entry {  // max-heap order: higher count first, then the smaller (left, right)
    uint64_t count;
    uint64_t key;
    bool operator<(const Entry& o) const { return count != o.count ? count < o.count : key > o.key; }
  };
  const std::string& text_of(int32_t id) const {
    return id >= kSpecialBase ? specials_[size_t(id - kSpecialBase)] : tokens_[size_t(id)];
  }
  int32_t token_for(const std::string& text);
  void merge_word(Word& w, uint32_t index, int32_t a, int32_t b, int32_t n);
  void add_pair(uint64_t key, int64_t delta, uint32_t word);

  std::vector<Word> words_;
  std::vector<std::string> tokens_;  // non-special tokens by id
  std::vector<std::string> specials_;
  std::unordered_map<std::string, int32_t> id_of_;
  std::unordered_map<uint64_t, uint64_t> pair_count_;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where_;  // superset of the words holding a pair
  std::priority_queue<Entry> queue_;
  std::vector<uint64_t> raised_;  // pairs whose count grew during the current merge
  std::vector<std::pair<uint64_t, int64_t>> word_changes_;
  std::vector<std::pair<int32_t, int32_t>> merges_;
  std::vector<int32_t> merged_ids_;
  uint64_t last_count_ = 0;
};

MergeLoop::MergeLoop(const WordCounts& counts, const std::vector<std::string>& specials) : specials_(specials) {
  for (int b = 0; b < 256; ++b) {
    tokens_.push_back(byte_to_unicode(uint8_t(b)));
    id_of_.emplace(tokens_.back(), b);
  }
  for (size_t k = 0; k < specials_.size(); ++k) id_of_.emplace(specials_[k], kSpecialBase + int32_t(k));
  std::vector<const WordCounts::value_type*> sorted;
  sorted.reserve(counts.size());
  for (const auto& entry : counts) sorted.push_back(&entry);
  std::sort(sorted.begin(), sorted.end(), [](auto* x, auto* y) { return x->first < y->first; });
  words_.reserve(sorted.size());
  for (const auto* entry : sorted) {
    Word w{{}, entry->second};
    for (char c : entry->first) w.symbols.push_back(int32_t(uint8_t(c)));
    const uint32_t index = uint32_t(words_.size());
    for (size_t i = 0; i + 1 < w.symbols.size(); ++i) add_pair(pair_key(w.symbols[i], w.symbols[i + 1]), int64_t(w.count), index);
    words_.push_back(std::move(w));
  }
  std::vector<Entry> entries;
  entries.reserve(pair_count_.size());
  for (const auto& [key, c] : pair_count_) entries.push_back({c, key});
  queue_ = std::priority_queue<Entry>(std::less<Entry>(), std::move(entries));
  raised_.clear();
}

void MergeLoop::add_pair(uint64_t key, int64_t delta, uint32_t word) {
  uint64_t& c = pair_count_[key];
  c = uint64_t(int64_t(c) + delta);
  if (delta > 0) {
    std::vector<uint32_t>& list = where_[key];
    if (list.empty() || list.back() != word) list.push_back(word);
    raised_.push_back(key);
  } else if (c == 0) {
    pair_count_.erase(key);
    where_.erase(key);
  }
}

int32_t MergeLoop::token_for(const std::string& text) {
  if (auto it = id_of_.find(text); it != id_of_.end()) return it->second;
  const int32_t id = int32_t(tokens_.size());
  tokens_.push_back(text);
  id_of_.emplace(text, id);
  return id;
}

// Replaces every (a, b) in the word, left to right, by n, and records how the word's pair
// occurrences change: (x, a) → (x, n) on the left, (b, y) → (n, y) on the right. The left neighbour
// is read from the rewritten prefix, so back-to-back occurrences (a b a b → n n) come out right.
void MergeLoop::merge_word(Word& w, uint32_t index, int32_t a, int32_t b, int32_t n) {
  word_changes_.clear();
  const auto change = [&](int32_t x, int32_t y, int64_t d) {
    const uint64_t key = pair_key(x, y);
    for (auto& [k, delta] : word_changes_)
      if (k == key) return void(delta += d);
    word_changes_.emplace_back(key, d);
  };
  std::vector<int32_t>& s = w.symbols;
  size_t j = 0;
  for (size_t i = 0; i < s.size();) {
    if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
      if (j > 0) change(s[j - 1], a, -1), change(s[j - 1], n, +1);
      if (i + 2 < s.size()) change(b, s[i + 2], -1), change(n, s[i + 2], +1);
      change(a, b, -1);
      s[j++] = n;
      i += 2;
    } else {
      s[j++] = s[i++];
    }
  }
  s.resize(j);
  for (const auto& [key, delta] : word_changes_)
    if (delta != 0) add_pair(key, delta * int64_t(w.count), index);
}

bool MergeLoop::step(uint64_t min_frequency) {
  Entry top{};
  for (;;) {
    if (queue_.empty()) return false;
    top = queue_.top();
    queue_.pop();
    auto it = pair_count_.find(top.key);
    const uint64_t now = it == pair_count_.end() ? 0 : it->second;
    if (now == top.count) break;
    if (now > 0) queue_.push({now, top.key});  // stale: try again with its current count
  }
  if (top.count < std::max<uint64_t>(min_frequency, 1)) return false;
  const int32_t a = key_left(top.key), b = key_right(top.key);
  const int32_t n = token_for(text_of(a) + text_of(b));
  merges_.emplace_back(a, b);
  merged_ids_.push_back(n);
  last_count_ = top.count;

  std::vector<uint32_t> list = std::move(where_[top.key]);
  std::sort(list.begin(), list.end());
  list.erase(std::unique(list.begin(), list.end()), list.end());
  raised_.clear();
  for (uint32_t index : list) merge_word(words_[index], index, a, b, n);
  UPCYCLE_CHECK(!pair_count_.count(top.key), "a merged pair still has occurrences");
  std::sort(raised_.begin(), raised_.end());
  raised_.erase(std::unique(raised_.begin(), raised_.end()), raised_.end());
  for (uint64_t key : raised_)
    if (auto it = pair_count_.find(key); it != pair_count_.end()) queue_.push({it->second, key});
  return true;
}

BpeTrainResult MergeLoop::finish(bool stopped_early) const {
  BpeTrainResult r;
  r.tokens = tokens_;
  r.tokens.insert(r.tokens.end(), specials_.begin(), specials_.end());
  const int32_t special_base = int32_t(tokens_.size());
  const auto final_id = [&](int32_t id) { return id >= kSpecialBase ? special_base + (id - kSpecialBase) : id; };
  for (auto [a, b] : merges_) r.merges.emplace_back(final_id(a), final_id(b));
  for (int32_t id : merged_ids_) r.merged_ids.push_back(final_id(id));
  r.specials = int64_t(specials_.size());
  r.stopped_early = stopped_early;
  r.last_count = last_count_;
  return r;
}

}  // namespace

BpeTrainResult train_bpe(const WordCounts& words, const BpeTrainerOptions& options,
                         const std::function<void(int64_t)>& on_merge) {
  validate_options(options);
  MergeLoop loop(words, options.special_tokens);
  bool stopped_early = false;
  while (loop.tokens() < options.vocab_size) {
    if (!loop.step(options.min_frequency)) {
      stopped_early = true;
      break;
    }
    if (on_merge) on_merge(loop.tokens());
  }
  return loop.finish(stopped_early);
}

}  // namespace upcycle::data
