// Writing a tensor piece that is computed a block of rows at a time, on every OpenMP thread: each thread
// fills a block of about kBlockBytes into its own buffer and pwrites it at its final offset
// (CheckpointWriter takes concurrent writes), then takes the next block. Nothing tensor-sized is held,
// the block is still in the core's cache when the kernel copies it into the page cache, and both the
// computing and that copy (the largest CPU cost of a conversion, docs/performance.md) run on every core,
// with no separate writer thread to hand off to. Blocks are handed out dynamically, so a thread slowed by
// the rest of the machine takes fewer; bytes never depend on which thread filled them. An Error thrown by
// fill or by a write stops the remaining blocks and is rethrown in the calling thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "io/checkpoint_writer.h"

namespace upcycle {

constexpr size_t kParallelWriteBlockBytes = size_t{512} << 10;

// Bytes [offset, offset + rows · row_bytes) of `tensor`; fill(first, count, out) writes rows
// [first, first + count) into out. Blocks hold whole rows (at least one).
void write_rows_in_parallel(CheckpointWriter& writer, std::string_view tensor, uint64_t offset, int64_t rows,
                            size_t row_bytes, const std::function<void(int64_t first, int64_t count, std::byte* out)>& fill);

}  // namespace upcycle
