// See eval_window_flags.h.
#include "cli/eval_window_flags.h"

#include <utility>

namespace upcycle::cli {

void bind_eval_window_flags(OptionSet& set, std::string* split, int64_t* seq_len, int64_t* max_tokens,
                            int64_t* batch, std::string split_help, std::string max_tokens_help) {
  set.add_choice("split", {"val", "train"}, std::move(split_help), split);
  set.add("seq-len", "N", "tokens each window predicts (windows hold N+1 tokens)", seq_len);
  set.add("max-tokens", "N", std::move(max_tokens_help), max_tokens);
  set.add("batch", "N", "windows per forward pass", batch);
}

}  // namespace upcycle::cli
