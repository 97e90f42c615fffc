// Text files → a dataset directory (token_dataset.h), the work behind `upcycle data tokenize`.
// Every input file is one document (UTF-8; invalid bytes are an Error naming the file), encoded with
// the tokenizer without special tokens and followed by the EOS id when there is one, in input order.
// The token stream's last ⌈F·N⌉ tokens are the val split, the rest the train split; each split is
// cut into shards of at most shard_tokens tokens (train-00000.bin…, val-00000.bin…).
// Documents are encoded in parallel (OpenMP, batches of whole documents); results are put in input
// order, so the output does not depend on the thread count. Memory: one batch of documents (≈8 MB
// plus the largest document) and one shard buffer of shard_tokens ids.
// Non-goals: splitting a document (a 1 GB file is held and encoded whole), dedup, shuffling.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace upcycle::data {

inline constexpr uint64_t kDefaultShardTokens = uint64_t(1) << 24;  // 16.8M tokens: 32 MiB as uint16

struct TokenizeSpec {
  std::vector<std::filesystem::path> inputs;
  std::string domain;
  double val_fraction = 0.0;  // in [0, 1)
  uint64_t shard_tokens = kDefaultShardTokens;
  std::optional<int32_t> eos;  // appended after every document when set
};

struct TokenizeResult {
  uint64_t input_bytes = 0;
  uint64_t train_tokens = 0, val_tokens = 0;
  size_t train_shards = 0, val_shards = 0;
};

// Byte size of every input; throws Error naming the first that is missing or not a regular file.
std::vector<uint64_t> input_sizes(const std::vector<std::filesystem::path>& inputs);

// Writes the shards and dataset.json into out_dir, an existing empty directory (the caller stages it
// and commits). Errors name the input file (unreadable, not a regular file, invalid UTF-8) or the
// output file at fault; an input stream of no tokens, or a val fraction leaving no train token, is an
// Error too. Shows a progress line (core/progress.h) over the input bytes.
TokenizeResult tokenize_corpus(const Tokenizer& tokenizer, const TokenizeSpec& spec,
                               const std::filesystem::path& out_dir);

}  // namespace upcycle::data
