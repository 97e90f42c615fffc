// Blocks of rows filled and written by several threads (see parallel_write.h).
#include "io/parallel_write.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace upcycle {

void write_rows_in_parallel(CheckpointWriter& writer, std::string_view tensor, uint64_t offset, int64_t rows,
                            size_t row_bytes, const std::function<void(int64_t first, int64_t count, std::byte* out)>& fill) {
  if (rows <= 0 || row_bytes == 0) return;
  const int64_t per_block = std::max<int64_t>(1, int64_t(kParallelWriteBlockBytes / row_bytes));
  const int64_t blocks = (rows + per_block - 1) / per_block;
  std::atomic<int64_t> next_block{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  std::mutex write_mutex;  // one pwrite at a time; a thread waiting for it sleeps (parallel_write.h)
  auto work = [&] {
    std::vector<std::byte> buffer(size_t(std::min(per_block, rows)) * row_bytes);
    for (int64_t b = next_block++; b < blocks && !failed; b = next_block++) {
      const int64_t first = b * per_block, count = std::min(per_block, rows - first);
      try {
        fill(first, count, buffer.data());
        std::lock_guard one_writer(write_mutex);
        writer.write(tensor, {buffer.data(), size_t(count) * row_bytes}, offset + uint64_t(first) * row_bytes);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  // The OpenMP thread count (--threads), as plain threads that end with the piece: OpenMP's idle workers
  // spin between regions, on the core the pwrite needs.
  std::vector<std::thread> helpers;
  for (int64_t t = 1; t < std::min<int64_t>(blocks, omp_get_max_threads()); ++t) helpers.emplace_back(work);
  work();
  for (auto& h : helpers) h.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace upcycle
