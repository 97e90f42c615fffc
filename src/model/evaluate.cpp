// Windowed evaluation (see evaluate.h). Each batch's loss() is a mean over its b·seq_len targets;
// multiplying back by that count and summing in double gives the exact overall mean even when the
// last batch is smaller.
#include "model/evaluate.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"

namespace upcycle::model {

void check_window_flags(int64_t seq_len, int64_t batch, int64_t max_tokens) {
  if (seq_len < 1) throw Error("--seq-len must be at least 1 (got " + std::to_string(seq_len) + ")");
  if (batch < 1) throw Error("--batch must be at least 1 (got " + std::to_string(batch) + ")");
  if (max_tokens < 0) throw Error("--max-tokens must be ≥ 0 (got " + std::to_string(max_tokens) + ")");
  if (max_tokens > 0 && max_tokens < seq_len)
    throw Error("--max-tokens " + std::to_string(max_tokens) + " is smaller than one window's " +
                std::to_string(seq_len) + " predicted tokens (--seq-len)");
}

int64_t count_windows(uint64_t tokens, int64_t seq_len, int64_t max_tokens, const std::string& what,
                      const std::string& path) {
  int64_t windows = int64_t(tokens / uint64_t(seq_len + 1));
  if (windows == 0)
    throw Error(what + " has " + std::to_string(tokens) + " tokens: fewer than one window of seq-len+1 = " +
                    std::to_string(seq_len + 1),
                path);
  if (max_tokens > 0) windows = std::min(windows, max_tokens / seq_len);
  return windows;
}

namespace {

// Adds the last forward's per-layer MoE statistics (over T tokens) to the running summaries.
void accumulate_routing(const Transformer& model, int64_t T, std::vector<LayerRoutingSummary>& routing) {
  size_t next = 0;
  for (int64_t l = 0; l < model.config().num_hidden_layers; ++l) {
    const MoeStats* stats = model.moe_stats(l);
    if (!stats) continue;
    if (next == routing.size()) {
      routing.push_back({.layer = l});
      routing.back().tokens_per_expert.assign(stats->tokens_per_expert.size(), 0);
    }
    LayerRoutingSummary& sum = routing[next++];
    for (size_t e = 0; e < stats->tokens_per_expert.size(); ++e) sum.tokens_per_expert[e] += stats->tokens_per_expert[e];
    sum.assignments += stats->assignments;
    sum.dropped += stats->dropped;
    sum.router_entropy += stats->router_entropy * double(T);
    sum.top1_probability += stats->top1_probability * double(T);
    sum.aux_loss += stats->aux_loss * double(T);
  }
}

}  // namespace

EvalResult evaluate_windows(Transformer& model, std::span<const int32_t> tokens, int64_t seq_len, int64_t batch,
                            Progress* progress) {
  const int64_t window = seq_len + 1;
  UPCYCLE_CHECK(seq_len > 0 && batch > 0, "evaluate_windows: seq_len and batch must be positive");
  UPCYCLE_CHECK(!tokens.empty() && int64_t(tokens.size()) % window == 0, "evaluate_windows: not whole windows");
  const int64_t n_windows = int64_t(tokens.size()) / window;
  std::vector<int32_t> inputs_BT, targets_BT;
  double loss_sum = 0.0;
  std::vector<LayerRoutingSummary> routing;
  for (int64_t w0 = 0; w0 < n_windows; w0 += batch) {
    const int64_t b = std::min(batch, n_windows - w0);
    inputs_BT.resize(size_t(b * seq_len));
    targets_BT.resize(size_t(b * seq_len));
    for (int64_t i = 0; i < b; ++i) {
      const int32_t* win = tokens.data() + (w0 + i) * window;
      std::copy_n(win, seq_len, inputs_BT.begin() + i * seq_len);
      std::copy_n(win + 1, seq_len, targets_BT.begin() + i * seq_len);
    }
    model.forward(inputs_BT.data(), b, seq_len);
    loss_sum += model.loss(targets_BT.data()) * double(b * seq_len);
    accumulate_routing(model, b * seq_len, routing);
    if (progress) progress->advance(uint64_t(b * seq_len));
  }
  EvalResult r;
  r.sequences = n_windows;
  r.tokens = n_windows * seq_len;
  r.loss = loss_sum / double(r.tokens);
  r.perplexity = std::exp(r.loss);
  for (auto& layer : routing) {  // token-weighted sums → means
    layer.router_entropy /= double(r.tokens);
    layer.top1_probability /= double(r.tokens);
    layer.aux_loss /= double(r.tokens);
  }
  r.routing = std::move(routing);
  return r;
}

}  // namespace upcycle::model
