// Writing a tensor piece that is computed a block of rows at a time, on several threads (the OpenMP
// thread count, --threads): each thread fills a block of about kParallelWriteBlockBytes into its own
// buffer and pwrites it at its final offset, then takes the next block. Nothing tensor-sized is held, and
// the block is still in the core's cache when the kernel copies it into the page cache. The pwrites take
// turns (a mutex): ext4 serialises buffered writes to one file on its inode lock anyway, and a second
// writer waiting there spins in the kernel (17 % of a drop conversion's samples under perf) where a
// thread waiting on the mutex sleeps — so while one thread writes, the other computes its next block.
// Plain threads, started per piece and joined, not an OpenMP region: OpenMP's workers spin while idle
// (7 % of the samples), on the core the writing thread needs. Blocks are handed out dynamically, so a
// thread slowed by the rest of the machine takes fewer; bytes never depend on which thread filled them.
// An Error thrown by fill or by a write stops the remaining blocks and is rethrown in the calling thread.
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
