// The flags that cut token data into evaluation windows (--split, --seq-len, --max-tokens, --batch),
// declared once for `eval` and `analyze` so their names and meaning cannot drift apart; the range
// checks are model::check_window_flags. Callers word the two helps that depend on what they read.
#pragma once

#include <cstdint>
#include <string>

#include "cli/options.h"

namespace upcycle::cli {

void bind_eval_window_flags(OptionSet& set, std::string* split, int64_t* seq_len, int64_t* max_tokens,
                            int64_t* batch, std::string split_help, std::string max_tokens_help);

}  // namespace upcycle::cli
