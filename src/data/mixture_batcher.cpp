// Mixture batching (see mixture_batcher.h).
// The per-epoch window order is a keyed bijection of [0, windows), evaluated one index at a time, so
// no permutation is ever stored and the position is just (epoch, cursor): a 6-round Feistel network
// on the smallest even-bit domain 2^(2h) ≥ windows (round function mix64 of a key drawn from
// CounterRng(seed, "mixture-order/<domain index>") at counter epoch·8 + round), with cycle walking:
// values ≥ windows are permuted again until they land inside, which keeps it a bijection of the
// smaller range (domain < 4·windows, so under 4 steps per index on average).
#include "data/mixture_batcher.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/rng.h"

namespace upcycle::data {
namespace {

constexpr int kFeistelRounds = 6;

// Window index at `position` of `epoch`'s order over n windows.
uint64_t permuted_window(const CounterRng& rng, uint64_t epoch, uint64_t position, uint64_t n) {
  int half = 1;  // bits per Feistel half
  while (half < 32 && (uint64_t(1) << (2 * half)) < n) ++half;
  const uint64_t mask = (uint64_t(1) << half) - 1;
  uint64_t keys[kFeistelRounds];
  for (int r = 0; r < kFeistelRounds; ++r) keys[r] = rng.bits(epoch * 8 + uint64_t(r));
  uint64_t x = position;
  do {
    uint64_t left = x >> half, right = x & mask;
    for (int r = 0; r < kFeistelRounds; ++r) {
      const uint64_t f = mix64(keys[r] ^ right) & mask;
      const uint64_t next_right = left ^ f;
      left = right;
      right = next_right;
    }
    x = (left << half) | right;
  } while (x >= n);
  return x;
}

}  // namespace

MixtureBatcher::MixtureBatcher(std::vector<TokenDataset> domains, std::vector<double> weights, int64_t seq_len,
                               uint64_t seed)
    : domains_(std::move(domains)), seq_len_(seq_len), seed_(seed) {
  UPCYCLE_CHECK(!domains_.empty(), "MixtureBatcher needs at least one domain");
  UPCYCLE_CHECK(weights.size() == domains_.size(), "MixtureBatcher: one weight per domain");
  UPCYCLE_CHECK(seq_len_ >= 1, "MixtureBatcher: seq_len must be at least 1");
  double total = 0;
  for (size_t d = 0; d < domains_.size(); ++d) {
    if (!(weights[d] > 0) || !std::isfinite(weights[d]))
      throw Error("mixing weight " + std::to_string(weights[d]) + " of domain " + domains_[d].domain +
                      " must be a positive number",
                  domains_[d].dir.string());
    total += weights[d];
    const uint64_t windows = domains_[d].tokens / uint64_t(seq_len_ + 1);
    if (windows == 0)
      throw Error("dataset has " + std::to_string(domains_[d].tokens) +
                      " tokens: fewer than one window of seq-len+1 = " + std::to_string(seq_len_ + 1),
                  domains_[d].dir.string());
    cursors_.push_back({0, 0, windows});
  }
  double running = 0;
  for (double w : weights) cumulative_.push_back((running += w) / total);
  cumulative_.back() = 1.0;  // uniform() < 1 always lands on a domain despite rounding
}

MixtureBatcher::Draw MixtureBatcher::draw() {
  const double u = CounterRng(seed_, "mixture").uniform(draws_++);
  const size_t d = size_t(std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin());
  Cursor& c = cursors_[d];
  const CounterRng order(seed_, "mixture-order/" + std::to_string(d));
  const uint64_t w = permuted_window(order, c.epoch, c.position, c.windows);
  if (++c.position == c.windows) {
    c.position = 0;
    ++c.epoch;
  }
  return {d, w};
}

void MixtureBatcher::next(int64_t B, int32_t* ids_BL, int32_t* targets_BL, int32_t* domain_B) {
  const int64_t L = seq_len_;
  std::vector<int32_t> window(size_t(L + 1));
  for (int64_t b = 0; b < B; ++b) {
    const auto [d, w] = draw();
    domains_[d].read(w * uint64_t(L + 1), uint64_t(L + 1), window.data());
    std::copy(window.begin(), window.end() - 1, ids_BL + b * L);
    std::copy(window.begin() + 1, window.end(), targets_BL + b * L);
    domain_B[b] = int32_t(d);
  }
}

void MixtureBatcher::skip(int64_t B) {
  for (int64_t b = 0; b < B; ++b) draw();
}

Json MixtureBatcher::state() const {
  Json domains = Json::array();
  for (size_t d = 0; d < domains_.size(); ++d)
    domains.push_back({{"domain", domains_[d].domain},
                       {"epoch", cursors_[d].epoch},
                       {"cursor", cursors_[d].position},
                       {"windows", cursors_[d].windows}});
  return {{"draws", draws_}, {"domains", domains}};
}

void MixtureBatcher::restore(const Json& state) {
  const auto bad = [](const std::string& what) {
    return Error("data position in the checkpoint is malformed: " + what);
  };
  if (!state.is_object() || !state.contains("draws") || !state.at("draws").is_number_unsigned() ||
      !state.contains("domains") || !state.at("domains").is_array())
    throw bad("expected {\"draws\": N, \"domains\": [...]}");
  const Json& list = state.at("domains");
  std::string saved_names, current_names;
  for (const Json& e : list) saved_names += (saved_names.empty() ? "" : ", ") + (e.contains("domain") ? e.at("domain").dump() : "?");
  for (const auto& d : domains_) current_names += (current_names.empty() ? "" : ", ") + Json(d.domain).dump();
  if (list.size() != domains_.size() || saved_names != current_names)
    throw Error("the data domains [" + current_names + "] differ from the checkpoint's [" + saved_names +
                "]: the data changed since the checkpoint (pass the same --data directories in the same order)");
  std::vector<Cursor> cursors = cursors_;
  for (size_t d = 0; d < domains_.size(); ++d) {
    const Json& e = list[d];
    for (const char* key : {"epoch", "cursor"})
      if (!e.contains(key) || !e.at(key).is_number_unsigned()) throw bad(std::string("domain entry without \"") + key + "\"");
    if (e.contains("windows") && e.at("windows") != cursors[d].windows)
      throw Error("domain " + domains_[d].domain + " now has " + std::to_string(cursors[d].windows) +
                      " windows of seq-len+1 tokens but had " + e.at("windows").dump() +
                      " at the checkpoint: the data or --seq-len changed since the checkpoint",
                  domains_[d].dir.string());
    cursors[d].epoch = e.at("epoch").get<uint64_t>();
    cursors[d].position = e.at("cursor").get<uint64_t>();
    if (cursors[d].position >= cursors[d].windows) throw bad("cursor beyond the domain's windows");
  }
  cursors_ = std::move(cursors);
  draws_ = state.at("draws").get<uint64_t>();
}

}  // namespace upcycle::data
