// Parsing of --moe-layers (see layer_selection.h).
#include "recipes/layer_selection.h"

#include <algorithm>
#include <charconv>
#include <string>

#include "core/error.h"

namespace upcycle::recipes {
namespace {

[[noreturn]] void bad(std::string_view text, const std::string& why) {
  throw Error("--moe-layers '" + std::string(text) + "': " + why +
              " (use all, every:N[:OFFSET], first:N, last:N or a list like 1,3,5)");
}

int64_t parse_int(std::string_view text, std::string_view part) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
  if (ec != std::errc() || end != part.data() + part.size() || part.empty())
    bad(text, "'" + std::string(part) + "' is not a whole number");
  return v;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

}  // namespace

std::vector<int64_t> select_moe_layers(std::string_view text, int64_t L) {
  std::vector<int64_t> out;
  const std::string count = std::to_string(L);
  if (text == "all") {
    for (int64_t l = 0; l < L; ++l) out.push_back(l);
  } else if (text.starts_with("every:")) {
    auto parts = split(text.substr(6), ':');
    if (parts.size() > 2) bad(text, "too many ':' parts");
    int64_t n = parse_int(text, parts[0]);
    int64_t offset = parts.size() == 2 ? parse_int(text, parts[1]) : 0;
    if (n < 1) bad(text, "N must be at least 1");
    if (offset < 0 || offset >= L) bad(text, "OFFSET must be in [0, " + count + ")");
    for (int64_t l = offset; l < L; l += n) out.push_back(l);
  } else if (text.starts_with("first:") || text.starts_with("last:")) {
    const bool first = text.starts_with("first:");
    int64_t n = parse_int(text, text.substr(first ? 6 : 5));
    if (n < 1 || n > L) bad(text, "N must be in [1, " + count + "]");
    for (int64_t l = first ? 0 : L - n; l < (first ? n : L); ++l) out.push_back(l);
  } else {
    for (auto part : split(text, ',')) {
      int64_t l = parse_int(text, part);
      if (l < 0 || l >= L) bad(text, "layer " + std::to_string(l) + " is outside [0, " + count + ")");
      out.push_back(l);
    }
    std::sort(out.begin(), out.end());
    if (std::adjacent_find(out.begin(), out.end()) != out.end()) bad(text, "a layer is listed twice");
  }
  if (out.empty()) bad(text, "selects no layer");
  return out;
}

}  // namespace upcycle::recipes
