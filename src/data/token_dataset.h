// A dataset directory: the output of `upcycle data tokenize`, one domain of tokenized text.
//   DIR/dataset.json  {"format": "upcycle-tokens", "version": 1, "domain": NAME, "vocab_size": V,
//                      "tokenizer": {...provenance...}, "sources": [...input files...],
//                      "splits": {"train": [{"file": F, "tokens": N}, ...], "val": [...]}}
//   DIR/<files named there>  token shards (token_shard.h)
// The sidecar names the domain (default: the directory name) and lists each split's shards in order;
// opening checks every listed shard exists, is valid, agrees on the vocab size and on its token count.
// A split is the concatenation of its shards, read as one stream of tokens. Shard file names are plain
// names inside DIR (no '/', no '..'). The JSON is validated field by field; unknown keys are kept.
// Non-goals: more than one domain per directory (mix domains with several --data directories).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "data/token_shard.h"

namespace upcycle::data {

enum class Split { kTrain, kVal };
const char* split_name(Split split);  // "train", "val"

inline constexpr const char* kDatasetFile = "dataset.json";
inline constexpr const char* kDatasetFormat = "upcycle-tokens";
inline constexpr int kDatasetVersion = 1;

// dataset.json as read and validated (shards are not opened).
struct DatasetManifest {
  struct Entry {
    std::string file;
    uint64_t tokens = 0;
  };
  std::filesystem::path dir;
  std::string domain;
  uint64_t vocab_size = 0;
  std::vector<Entry> train, val;  // empty when the split is absent
  Json json;                      // the whole file (provenance and unknown keys included)
  const std::vector<Entry>& split(Split s) const { return s == Split::kTrain ? train : val; }
};
// Throws Error naming DIR/dataset.json for a missing file, malformed JSON or a bad field.
DatasetManifest read_dataset_manifest(const std::filesystem::path& dir);

struct TokenDataset {
  std::filesystem::path dir;
  std::string domain;
  uint64_t vocab_size = 0;
  std::vector<TokenShard> shards;  // of the opened split, in order
  uint64_t tokens = 0;             // Σ shard counts
  std::vector<uint64_t> starts;    // starts[i] = stream position of shards[i]'s first token

  // Tokens [begin, begin + n) of the split's stream (may cross shard boundaries) into out[n].
  void read(uint64_t begin, uint64_t n, int32_t* out) const;
  // Scans every id of the split; the first id ≥ limit throws Error naming its shard and position there.
  void check_ids(uint64_t limit) const;
  // The shard holding stream position p (< tokens) and p's offset inside it.
  std::pair<size_t, uint64_t> locate(uint64_t p) const;
};

// Throws Error naming DIR/dataset.json (or the shard) when the directory is not a valid dataset or the
// split is absent or empty ("… has no val split: tokenize with --val-fraction").
TokenDataset open_dataset(const std::filesystem::path& dir, Split split);
// The same checks of one split's shards, for a manifest already read; an absent split gives no shards.
TokenDataset open_split(const DatasetManifest& manifest, Split split);

}  // namespace upcycle::data
