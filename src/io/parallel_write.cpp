// Blocks of rows filled and written by every thread (see parallel_write.h).
#include "io/parallel_write.h"

#include <algorithm>
#include <exception>
#include <mutex>
#include <vector>

namespace upcycle {

void write_rows_in_parallel(CheckpointWriter& writer, std::string_view tensor, uint64_t offset, int64_t rows,
                            size_t row_bytes, const std::function<void(int64_t first, int64_t count, std::byte* out)>& fill) {
  if (rows <= 0 || row_bytes == 0) return;
  const int64_t per_block = std::max<int64_t>(1, int64_t(kParallelWriteBlockBytes / row_bytes));
  const int64_t blocks = (rows + per_block - 1) / per_block;
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel if (blocks > 1)
  {
    std::vector<std::byte> buffer(size_t(std::min(per_block, rows)) * row_bytes);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < blocks; ++b) {
      {
        std::lock_guard lock(error_mutex);
        if (error) continue;  // an exception may not leave the region: skip what is left
      }
      const int64_t first = b * per_block, count = std::min(per_block, rows - first);
      try {
        fill(first, count, buffer.data());
        writer.write(tensor, {buffer.data(), size_t(count) * row_bytes}, offset + uint64_t(first) * row_bytes);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace upcycle
