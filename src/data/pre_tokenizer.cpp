// PCRE2-backed regex splitting and the pre-tokenizer steps (see pre_tokenizer.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/pre_tokenizer.h"

#include <pcre2.h>

#include "core/error.h"
#include "data/byte_level_bpe.h"
#include "data/unicode_text.h"

namespace upcycle::data {
namespace {

// Unicode White_Space, the set Oniguruma's \s (and Rust's char::is_whitespace) uses.
constexpr std::string_view kWhiteSpaceClass =
    R"(\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

struct Regex::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

std::string rewrite_white_space_classes(std::string_view p) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[++i];
      if (e == 's') out += in_class ? std::string(kWhiteSpaceClass) : "[" + std::string(kWhiteSpaceClass) + "]";
      else if (e == 'S' && !in_class) out += "[^" + std::string(kWhiteSpaceClass) + "]";
      else out += {c, e};
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX [:name:] inside a class
      const size_t end = p.find(":]", i + 2);
      if (end != std::string_view::npos) {
        out += p.substr(i, end + 2 - i);
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

Regex::Regex(std::string_view pattern, Literal literal, const std::string& file) {
  const std::string rewritten = literal == Literal::kYes ? std::string(pattern) : rewrite_white_space_classes(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  // PCRE2_LITERAL refuses PCRE2_UCP (meaningless without metacharacters).
  const uint32_t options = PCRE2_UTF | (literal == Literal::kYes ? PCRE2_LITERAL : PCRE2_UCP);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(), options, &error,
                                   &offset, nullptr);
  if (!code)
    throw Error("pre_tokenizer regex '" + std::string(pattern) + "' does not compile: " + pcre2_message(error), file);
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort: without JIT pcre2_match interprets
  auto compiled = std::make_shared<Compiled>();
  compiled->code = code;
  compiled_ = std::move(compiled);
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(compiled_->code, nullptr);
  UPCYCLE_CHECK(md, "pcre2_match_data_create_from_pattern failed");
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t offset = 0;
  while (offset < text.size()) {
    // Text was validated as UTF-8 once, and offsets stay on code point boundaries.
    int rc = pcre2_match(compiled_->code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc = pcre2_match(compiled_->code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      throw Error("pre_tokenizer regex failed on the input: " + pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[1] == ov[0]) {  // empty match: nothing to split off, step over one code point
      size_t next = ov[0];
      if (next >= text.size()) break;
      next_code_point(text, next);
      offset = next;
      continue;
    }
    out.emplace_back(ov[0], ov[1]);
    offset = ov[1];
  }
  pcre2_match_data_free(md);
}

bool PreTokenizer::byte_level() const {
  for (const auto& s : steps_)
    if (s.kind == PreTokenizeStep::Kind::kByteLevel) return true;
  return false;
}

namespace {

// Splits every piece by the regex's matches: matches (and, when isolated, the gaps between them)
// become pieces in text order.
void split_by_regex(const Regex& re, SplitBehavior behavior, std::vector<std::string>& pieces) {
  std::vector<std::string> out;
  std::vector<std::pair<size_t, size_t>> matches;
  for (const std::string& piece : pieces) {
    matches.clear();
    re.find_all(piece, matches);
    size_t last = 0;
    for (auto [s, e] : matches) {
      if (s > last) out.push_back(piece.substr(last, s - last));
      if (behavior == SplitBehavior::kIsolated) out.push_back(piece.substr(s, e - s));
      last = e;
    }
    if (last < piece.size()) out.push_back(piece.substr(last));
  }
  pieces = std::move(out);
}

// HF's Digits splits on Rust's char::is_numeric (Nd, Nl, No: "½", "²", "٣" too, not only 0-9): each
// numeric character alone (individual_digits) or runs of them (Contiguous), the rest left as it is.
void split_digits(bool individual, std::vector<std::string>& pieces) {
  std::vector<std::string> out;
  for (const std::string& piece : pieces) {
    size_t start = 0, i = 0;
    bool in_number = false;
    while (i < piece.size()) {
      const size_t at = i;
      const bool numeric = is_numeric(next_code_point(piece, i));
      if (at > start && (numeric != in_number || (numeric && individual))) {
        out.push_back(piece.substr(start, at - start));
        start = at;
      }
      in_number = numeric;
    }
    if (start < piece.size()) out.push_back(piece.substr(start));
  }
  pieces = std::move(out);
}

}  // namespace

std::vector<std::string> PreTokenizer::run(std::string_view text) const {
  std::vector<std::string> pieces{std::string(text)};
  for (const PreTokenizeStep& step : steps_) {
    switch (step.kind) {
      case PreTokenizeStep::Kind::kSplit:
        split_by_regex(*step.regex, step.behavior, pieces);
        break;
      case PreTokenizeStep::Kind::kDigits:
        split_digits(step.individual_digits, pieces);
        break;
      case PreTokenizeStep::Kind::kByteLevel:
        if (step.add_prefix_space)
          for (std::string& p : pieces)
            if (p.empty() || p[0] != ' ') p.insert(p.begin(), ' ');
        if (step.regex) split_by_regex(*step.regex, SplitBehavior::kIsolated, pieces);
        for (std::string& p : pieces) p = to_byte_level(p);
        break;
    }
  }
  return pieces;
}

}  // namespace upcycle::data
