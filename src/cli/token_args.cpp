// Token-id arguments shared by the commands that take --tokens (logits, generate); see token_args.h.
#include "cli/token_args.h"

#include <charconv>

#include "core/error.h"

namespace upcycle::cli {

std::vector<int32_t> parse_token_ids(const std::string& text, int64_t vocab_size) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == ',' || text[i] == '\t' || text[i] == '\n') {
      ++i;
      continue;
    }
    size_t end = text.find_first_of(" ,\t\n", i);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(i, end - i);
    int64_t id = 0;
    auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && ptr == word.data() + word.size() &&
                                                 (id < 0 || id >= vocab_size)))
      throw Error("token id " + word + " is out of range: vocab_size is " + std::to_string(vocab_size) +
                  " (ids must lie in [0, " + std::to_string(vocab_size) + "))");
    if (ec != std::errc() || ptr != word.data() + word.size())
      throw Error("--tokens: '" + word + "' is not an integer token id");
    ids.push_back(int32_t(id));
    i = end;
  }
  if (ids.empty()) throw Error("--tokens is empty: give at least one token id");
  return ids;
}

}  // namespace upcycle::cli
