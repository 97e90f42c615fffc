// Raw token files: a flat array of little-endian uint32 token ids, no header — the interim input of
// `upcycle eval` until the training work defines a shard format. Reading validates what it can
// name precisely: the byte size (a multiple of 4) and each id against the vocabulary, reporting the
// first bad id with its position. Non-goals: headers, other widths, memory mapping, streaming.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace upcycle {

// Number of tokens in the file; throws Error naming the file when it cannot be read or its size is
// not a multiple of 4 bytes.
uint64_t token_file_count(const std::filesystem::path& path);

// The first `count` tokens (count ≤ token_file_count(path)) as int32 ids, each checked to be
// < vocab_size; the first offending id throws Error("token id X at position P …", path).
std::vector<int32_t> read_token_file(const std::filesystem::path& path, uint64_t count, int64_t vocab_size);

}  // namespace upcycle
