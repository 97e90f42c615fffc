// A dataset directory: the output of `upcycle data tokenize`, one domain of tokenized text.
//   DIR/dataset.json  {"format": "upcycle-tokens", "version": 1, "domain": NAME, "vocab_size": V,
//                      "tokenizer": {...provenance...}, "sources": [...input files...],
//                      "splits": {"train": [{"file": F, "tokens": N}, ...], "val": [...]}}
//   DIR/<files named there>  token shards (token_shard.h)
// The sidecar names the domain (default: the directory name) and lists each split's shards in order;
// opening checks every listed shard exists, is valid, agrees on the vocab size and on its token count.
// A split is the concatenation of its shards, read as one stream of tokens.
// Non-goals: more than one domain per directory (mix domains with several --data directories).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/token_shard.h"

namespace upcycle::data {

enum class Split { kTrain, kVal };

struct TokenDataset {
  std::filesystem::path dir;
  std::string domain;
  uint64_t vocab_size = 0;
  std::vector<TokenShard> shards;  // of the opened split, in order
  uint64_t tokens = 0;             // Σ shard counts

  // Tokens [begin, begin + n) of the split's stream (may cross shard boundaries) into out[n].
  void read(uint64_t begin, uint64_t n, int32_t* out) const;
};

// Throws Error naming DIR/dataset.json (or the shard) when the directory is not a valid dataset or the
// split is absent or empty ("… has no val split: tokenize with --val-fraction").
TokenDataset open_dataset(const std::filesystem::path& dir, Split split);

}  // namespace upcycle::data
