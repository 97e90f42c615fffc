// Writing a tensor piece that is computed a block of rows at a time, on several threads (the OpenMP
// thread count, --threads): each thread fills a block of about kParallelWriteBlockBytes and queues it;
// one thread at a time writes the queued blocks (pwrite at their final offsets) until none is left,
// while the others keep filling, from a pool of threads + 2 buffers. Nothing tensor-sized is held, and a
// block is written soon after it was filled, still warm in cache for the kernel's copy into the page
// cache. One writer because ext4 serialises buffered writes to one file on its inode lock anyway: with
// every thread pwriting, the waiting one spun in the kernel (17 % of a drop conversion's samples under
// perf); with writes taking turns on a mutex, a thread waited there instead of filling (7.7 s of a 25 s
// conversion). Plain threads, started per piece and joined, not an OpenMP region: OpenMP's workers spin
// while idle (7 % of the samples), on the core the writing thread needs. Blocks are handed out
// dynamically; bytes never depend on which thread filled or wrote them. An Error thrown by fill or by a
// write stops the remaining blocks and is rethrown in the calling thread.
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
