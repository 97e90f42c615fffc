// Training batches from several domains with mixing weights, in a deterministic order.
// Each domain's split is cut into non-overlapping windows of seq_len+1 tokens (the trailing partial
// window is unused); window w gives inputs tokens[w(L+1), +L) and targets shifted by one. Draw k of the
// run picks domain d with probability weight_d/Σweights using CounterRng(seed, "mixture").uniform(k);
// within a domain, windows are visited in a seeded permutation per epoch (a fresh permutation each
// epoch), so every window is seen once per epoch. The permutation is a keyed Feistel bijection evaluated
// per index (mixture_batcher.cpp), never stored. The whole position is a few counters (draws so far,
// per-domain epoch and cursor): state() / restore() make resume exact.
// Non-goals: document-aware packing, sequence-level shuffling buffers, streaming beyond pread.
#pragma once

#include <cstdint>
#include <vector>

#include "core/json.h"
#include "data/token_dataset.h"

namespace upcycle::data {

class MixtureBatcher {
 public:
  // weights[d] > 0 for each domain; every domain must hold at least one window (Error naming its dir).
  MixtureBatcher(std::vector<TokenDataset> domains, std::vector<double> weights, int64_t seq_len, uint64_t seed);

  // Fills B windows: ids_BL and targets_BL (B·seq_len each, row-major by sequence) and domain_B[b]
  // (index into the constructor's domains).
  void next(int64_t B, int32_t* ids_BL, int32_t* targets_BL, int32_t* domain_B);

  // Advances past B windows exactly as next(B) would, reading nothing: a data-parallel rank skips the
  // other ranks' micro-batches of the one global stream.
  void skip(int64_t B);

  const std::vector<TokenDataset>& domains() const { return domains_; }
  int64_t seq_len() const { return seq_len_; }
  // {"draws": k, "domains": [{"domain": NAME, "epoch": e, "cursor": c, "windows": n}, ...]}; restore()
  // checks the domain list matches, and each domain's window count when the state has one (Error
  // otherwise: the data or seq_len changed since the checkpoint). A failed restore changes nothing.
  Json state() const;
  void restore(const Json& state);

 private:
  std::vector<TokenDataset> domains_;
  std::vector<double> cumulative_;  // normalised cumulative weights
  int64_t seq_len_ = 0;
  uint64_t seed_ = 0;
  uint64_t draws_ = 0;
  struct Draw {
    size_t domain;
    uint64_t window;
  };
  Draw draw();  // the next window of the stream; advances the counters
  struct Cursor {
    uint64_t epoch = 0, position = 0, windows = 0;
  };
  std::vector<Cursor> cursors_;
};

}  // namespace upcycle::data
