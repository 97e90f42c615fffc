// Tokenizer encode/decode over the parsed state (see tokenizer.h for the pipeline).
#include "data/tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "data/tokenizer_state.h"

namespace upcycle::data {
namespace {

struct Piece {
  size_t start = 0, end = 0;
  int32_t id = -1;  // ≥ 0: an added token
};

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t start = 0;
  return is_word_character(previous_code_point(s, s.size(), start));
}

bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  return is_word_character(next_code_point(s, i));
}

// Start of the run of white space that ends s (HF: regex \s*$).
size_t leftmost_space_at_end(std::string_view s) {
  size_t end = s.size(), start = 0;
  while (end > 0 && is_white_space(previous_code_point(s, end, start))) end = start;
  return end;
}

// Length of the run of white space that starts s (HF: regex ^\s*).
size_t rightmost_space_at_start(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t next = i;
    if (!is_white_space(next_code_point(s, next))) break;
    i = next;
  }
  return i;
}

// The earliest position where some token matches, and the longest token there.
bool next_match(const AddedTokenMatcher& m, std::string_view s, size_t from, size_t& at, size_t& len, size_t& token) {
  for (size_t i = from; i < s.size(); ++i) {
    for (const auto& e : m.by_first_byte[static_cast<unsigned char>(s[i])]) {
      if (s.compare(i, e.text.size(), e.text) == 0) {
        at = i, len = e.text.size(), token = e.token;
        return true;
      }
    }
  }
  return false;
}

// HF AddedVocabulary::find_matches: pieces covering `s`, added tokens with their strip/word rules.
std::vector<Piece> split_on_added(const Tokenizer::State& st, const AddedTokenMatcher& m, std::string_view s) {
  std::vector<Piece> out;
  size_t start_offset = 0, from = 0, at = 0, len = 0, token = 0;
  while (!m.empty && next_match(m, s, from, at, len, token)) {
    from = at + len;
    const AddedToken& a = st.added[token];
    size_t start = at, stop = at + len;
    if (a.single_word) {
      const bool start_space = start == 0 || !ends_with_word(s.substr(0, start));
      const bool stop_space = stop == s.size() || !starts_with_word(s.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (a.lstrip) start = std::max(leftmost_space_at_end(s.substr(0, start)), start_offset);
    if (a.rstrip) stop += rightmost_space_at_start(s.substr(stop));
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, a.id});
    start_offset = stop;
  }
  if (start_offset < s.size()) out.push_back({start_offset, s.size(), -1});
  return out;
}

void encode_plain(const Tokenizer::State& st, std::string_view text, std::vector<int32_t>& ids) {
  for (const std::string& word : st.pre_tokenizer.run(text)) st.bpe.encode_word(word, ids);
}

}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, AddSpecial add) const {
  const State& st = *state_;
  if (auto bad = find_invalid_utf8(text))
    throw Error("text to tokenize is not valid UTF-8 (first bad byte at offset " + std::to_string(*bad) + ")");
  std::vector<int32_t> ids;
  if (add == AddSpecial::kYes) ids = st.template_prefix;
  for (const Piece& p : split_on_added(st, st.raw_matcher, text)) {
    if (p.id >= 0) {
      ids.push_back(p.id);
      continue;
    }
    std::string normalized(text.substr(p.start, p.end - p.start));
    for (NormalForm f : st.normalizers) normalized = normalize(normalized, f);
    for (const Piece& q : split_on_added(st, st.normalized_matcher, normalized)) {
      if (q.id >= 0) ids.push_back(q.id);
      else encode_plain(st, std::string_view(normalized).substr(q.start, q.end - q.start), ids);
    }
  }
  if (add == AddSpecial::kYes) ids.insert(ids.end(), st.template_suffix.begin(), st.template_suffix.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, SkipSpecial skip) const {
  const State& st = *state_;
  std::vector<const std::string*> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (auto it = st.added_by_id.find(id); it != st.added_by_id.end()) {
      const AddedToken& a = st.added[it->second];
      if (!(a.special && skip == SkipSpecial::kYes)) tokens.push_back(&a.content);
    } else if (id >= 0 && id < int64_t(st.has_vocab_id.size()) && st.has_vocab_id[size_t(id)]) {
      tokens.push_back(&st.vocab_by_id[size_t(id)]);
    }  // ids without a token are dropped, as HF does
  }
  std::string out;
  if (st.decoder == DecoderKind::kNone) {  // HF joins the tokens with spaces when there is no decoder
    for (size_t k = 0; k < tokens.size(); ++k) out += (k ? " " : "") + *tokens[k];
    return out;
  }
  // ByteLevel: each token's stand-ins back to bytes; a token with any other code point (e.g. an
  // added token containing a space) contributes its UTF-8 as is. The byte string is then read as
  // UTF-8 lossily.
  std::string bytes, token_bytes;
  for (const std::string* t : tokens) {
    token_bytes.clear();
    bool mapped = true;
    for (size_t i = 0; i < t->size() && mapped;) {
      const int b = byte_from_unicode(next_code_point(*t, i));
      if (b < 0) mapped = false;
      else token_bytes += char(b);
    }
    bytes += mapped ? token_bytes : *t;
  }
  return utf8_lossy(bytes);
}

int64_t Tokenizer::vocab_size() const { return state_->vocab_size; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const State& st = *state_;
  if (auto it = st.added_by_content.find(std::string(token)); it != st.added_by_content.end())
    return st.added[it->second].id;
  if (auto it = st.bpe.vocab().find(std::string(token)); it != st.bpe.vocab().end()) return it->second;
  return std::nullopt;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  const State& st = *state_;
  if (auto it = st.added_by_id.find(id); it != st.added_by_id.end()) return st.added[it->second].content;
  if (id >= 0 && id < int64_t(st.has_vocab_id.size()) && st.has_vocab_id[size_t(id)]) return st.vocab_by_id[size_t(id)];
  throw Error("token id " + std::to_string(id) + " has no token (vocab_size is " + std::to_string(st.vocab_size) + ")",
              st.file.string());
}

std::optional<int32_t> Tokenizer::bos_id() const { return state_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return state_->eos; }
const std::filesystem::path& Tokenizer::file() const { return state_->file; }

}  // namespace upcycle::data
