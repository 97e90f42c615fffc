// Parsing of --tokens "ID ID ..." for the commands that take token ids on the command line. Ids are
// separated by spaces, commas, tabs or newlines and validated against the vocabulary before any
// weight is read; every problem is a one-line user Error naming the offending word.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace upcycle::cli {

// "1 2 3" or "1,2,3" → ids, each in [0, vocab_size); empty input is an error.
std::vector<int32_t> parse_token_ids(const std::string& text, int64_t vocab_size);

}  // namespace upcycle::cli
