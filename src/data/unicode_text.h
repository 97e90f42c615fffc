// UTF-8 and Unicode helpers for the tokenizer, with the exact semantics HF tokenizers (Rust) uses:
// UTF-8 validation, lossy decoding like Rust's String::from_utf8_lossy (one U+FFFD per maximal
// ill-formed subpart), Unicode normalization forms (ICU), and the character classes of Rust's
// `regex` crate that added-token lstrip/rstrip/single_word rely on (\s = White_Space, \w = word).
// Non-goals: grapheme clusters, case mapping, locale-dependent behaviour.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace upcycle::data {

// Byte offset of the first ill-formed UTF-8 sequence, or none when `text` is valid UTF-8.
std::optional<size_t> find_invalid_utf8(std::string_view text);

// Decodes the code point starting at text[i] (text must be valid UTF-8) and advances i past it.
char32_t next_code_point(std::string_view text, size_t& i);
// Decodes the code point ending just before text[end] (valid UTF-8, end > 0); returns its start too.
char32_t previous_code_point(std::string_view text, size_t end, size_t& start);
void append_utf8(std::string& out, char32_t cp);

// Rust's String::from_utf8_lossy: valid sequences copied, each maximal ill-formed subpart → U+FFFD.
std::string utf8_lossy(std::string_view bytes);

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };
// Normalizes valid UTF-8 text (ICU unorm2); pure-ASCII input is returned unchanged without ICU.
std::string normalize(std::string_view text, NormalForm form);

// Unicode White_Space (Rust char::is_whitespace, regex \s, Oniguruma \s).
bool is_white_space(char32_t cp);
// Rust's char::is_numeric: general category Nd, Nl or No (HF's Digits pre-tokenizer splits on it).
bool is_numeric(char32_t cp);
// Rust regex's Unicode \w: Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control.
bool is_word_character(char32_t cp);

}  // namespace upcycle::data
