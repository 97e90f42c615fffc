// UTF-8 helpers and ICU-backed Unicode properties/normalization (see unicode_text.h).
#include "data/unicode_text.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <vector>

#include "core/error.h"

namespace upcycle::data {
namespace {

// Length of the well-formed UTF-8 sequence at text[i], or 0 with `bad_len` = the length of the
// maximal ill-formed subpart (Unicode §3.9, the rule from_utf8_lossy follows): the longest prefix
// of a valid sequence that is present before the first unexpected byte, at least 1.
size_t sequence_length(std::string_view text, size_t i, size_t& bad_len) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = b(i);
  bad_len = 1;
  if (c < 0x80) return 1;
  size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) need = 1;
  else if (c == 0xE0) need = 2, lo = 0xA0;
  else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
  else if (c == 0xED) need = 2, hi = 0x9F;
  else if (c == 0xF0) need = 3, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) need = 3;
  else if (c == 0xF4) need = 3, hi = 0x8F;
  else return 0;
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= text.size()) return 0;
    const unsigned char x = b(i + k);
    const bool ok = k == 1 ? (x >= lo && x <= hi) : (x >= 0x80 && x <= 0xBF);
    if (!ok) return 0;
    bad_len = k + 1;
  }
  return need + 1;
}

std::u16string to_utf16(std::string_view text) {
  std::u16string out(text.size(), u'\0');  // UTF-16 never needs more units than UTF-8 bytes
  int32_t len = 0;
  UErrorCode status = U_ZERO_ERROR;
  u_strFromUTF8(reinterpret_cast<UChar*>(out.data()), int32_t(out.size()), &len, text.data(), int32_t(text.size()),
                &status);
  UPCYCLE_CHECK(U_SUCCESS(status), std::string("u_strFromUTF8: ") + u_errorName(status));
  out.resize(size_t(len));
  return out;
}

std::string to_utf8(const std::u16string& text) {
  std::string out(text.size() * 3, '\0');
  int32_t len = 0;
  UErrorCode status = U_ZERO_ERROR;
  u_strToUTF8(out.data(), int32_t(out.size()), &len, reinterpret_cast<const UChar*>(text.data()), int32_t(text.size()),
              &status);
  UPCYCLE_CHECK(U_SUCCESS(status), std::string("u_strToUTF8: ") + u_errorName(status));
  out.resize(size_t(len));
  return out;
}

const UNormalizer2* normalizer_for(NormalForm form) {
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* n = nullptr;
  switch (form) {
    case NormalForm::kNfc: n = unorm2_getNFCInstance(&status); break;
    case NormalForm::kNfd: n = unorm2_getNFDInstance(&status); break;
    case NormalForm::kNfkc: n = unorm2_getNFKCInstance(&status); break;
    case NormalForm::kNfkd: n = unorm2_getNFKDInstance(&status); break;
  }
  UPCYCLE_CHECK(U_SUCCESS(status) && n, std::string("ICU normalizer unavailable: ") + u_errorName(status));
  return n;
}

}  // namespace

std::optional<size_t> find_invalid_utf8(std::string_view text) {
  size_t bad = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t n = sequence_length(text, i, bad);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

char32_t next_code_point(std::string_view text, size_t& i) {
  const auto b = [&](size_t k) { return char32_t(static_cast<unsigned char>(text[k])); };
  const char32_t c = b(i);
  if (c < 0x80) return i += 1, c;
  if (c < 0xE0) return i += 2, ((c & 0x1F) << 6) | (b(i - 1) & 0x3F);
  if (c < 0xF0) return i += 3, ((c & 0x0F) << 12) | ((b(i - 2) & 0x3F) << 6) | (b(i - 1) & 0x3F);
  i += 4;
  return ((c & 0x07) << 18) | ((b(i - 3) & 0x3F) << 12) | ((b(i - 2) & 0x3F) << 6) | (b(i - 1) & 0x3F);
}

char32_t previous_code_point(std::string_view text, size_t end, size_t& start) {
  start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  size_t i = start;
  return next_code_point(text, i);
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t bad = 0;
  for (size_t i = 0; i < bytes.size();) {
    const size_t n = sequence_length(bytes, i, bad);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      i += bad;
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string normalize(std::string_view text, NormalForm form) {
  bool ascii = true;
  for (char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii) return std::string(text);  // ASCII is invariant under all four forms
  const UNormalizer2* n = normalizer_for(form);
  const std::u16string src = to_utf16(text);
  UErrorCode status = U_ZERO_ERROR;
  const auto* s = reinterpret_cast<const UChar*>(src.data());
  if (unorm2_isNormalized(n, s, int32_t(src.size()), &status) && U_SUCCESS(status)) return std::string(text);
  status = U_ZERO_ERROR;
  std::u16string dst(src.size() * 2 + 16, u'\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    status = U_ZERO_ERROR;
    const int32_t len = unorm2_normalize(n, s, int32_t(src.size()), reinterpret_cast<UChar*>(dst.data()),
                                         int32_t(dst.size()), &status);
    if (status == U_BUFFER_OVERFLOW_ERROR) {
      dst.assign(size_t(len), u'\0');
      continue;
    }
    UPCYCLE_CHECK(U_SUCCESS(status), std::string("unorm2_normalize: ") + u_errorName(status));
    dst.resize(size_t(len));
    return to_utf8(dst);
  }
  UPCYCLE_CHECK(false, "unorm2_normalize: buffer still too small");
}

bool is_white_space(char32_t cp) { return u_hasBinaryProperty(UChar32(cp), UCHAR_WHITE_SPACE); }

bool is_numeric(char32_t cp) {
  return (U_GET_GC_MASK(UChar32(cp)) & (U_GC_ND_MASK | U_GC_NL_MASK | U_GC_NO_MASK)) != 0;
}

bool is_word_character(char32_t cp) {
  const UChar32 c = UChar32(cp);
  if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL)) return true;
  const int32_t mask = U_GET_GC_MASK(c);
  return (mask & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}

}  // namespace upcycle::data
