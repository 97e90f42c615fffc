// Blocks of rows filled by several threads, written by one at a time (see parallel_write.h).
#include "io/parallel_write.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace upcycle {
namespace {

// The blocks between the threads: buffers to fill, filled blocks waiting for the writer, and who writes.
class BlockQueue {
 public:
  BlockQueue(CheckpointWriter& writer, std::string_view tensor, uint64_t offset, size_t row_bytes, size_t buffers,
             size_t buffer_bytes)
      : writer_(writer), tensor_(tensor), offset_(offset), row_bytes_(row_bytes) {
    for (size_t i = 0; i < buffers; ++i) free_.emplace_back(buffer_bytes);
  }

  // A buffer to fill; while none is free, writes the filled blocks (when nobody else does) or waits.
  // Empty once an error has stopped the piece.
  std::vector<std::byte> buffer() {
    std::unique_lock lock(mutex_);
    while (free_.empty() && !error_) {
      if (!writing_ && !ready_.empty()) write_ready(lock);
      else changed_.wait(lock);
    }
    if (error_) return {};
    std::vector<std::byte> b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  // Queues a filled block; the thread becomes the writer unless another thread is writing.
  void filled(int64_t first, int64_t count, std::vector<std::byte> bytes) {
    std::unique_lock lock(mutex_);
    ready_.push_back({first, count, std::move(bytes)});
    if (!writing_) write_ready(lock);
  }
  void fail(std::exception_ptr e) {
    std::lock_guard lock(mutex_);
    if (!error_) error_ = e;
    changed_.notify_all();
  }
  // After every thread is done: what is left, then the first error.
  void finish() {
    std::unique_lock lock(mutex_);
    if (!error_) write_ready(lock);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  struct Block {
    int64_t first, count;
    std::vector<std::byte> bytes;
  };
  // Writes queued blocks until none is left (blocks filled meanwhile included), the lock released
  // around each pwrite so the other threads keep filling.
  void write_ready(std::unique_lock<std::mutex>& lock) {
    writing_ = true;
    while (!ready_.empty() && !error_) {
      Block b = std::move(ready_.front());
      ready_.pop_front();
      lock.unlock();
      std::exception_ptr e;
      try {
        writer_.write(tensor_, {b.bytes.data(), size_t(b.count) * row_bytes_}, offset_ + uint64_t(b.first) * row_bytes_);
      } catch (...) {
        e = std::current_exception();
      }
      lock.lock();
      if (e && !error_) error_ = e;
      free_.push_back(std::move(b.bytes));
      changed_.notify_all();
    }
    writing_ = false;
    changed_.notify_all();
  }

  CheckpointWriter& writer_;
  std::string_view tensor_;
  uint64_t offset_;
  size_t row_bytes_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::vector<std::byte>> free_;
  std::deque<Block> ready_;
  bool writing_ = false;
  std::exception_ptr error_;
};

}  // namespace

void write_rows_in_parallel(CheckpointWriter& writer, std::string_view tensor, uint64_t offset, int64_t rows,
                            size_t row_bytes, const std::function<void(int64_t first, int64_t count, std::byte* out)>& fill) {
  if (rows <= 0 || row_bytes == 0) return;
  const int64_t per_block = std::max<int64_t>(1, int64_t(kParallelWriteBlockBytes / row_bytes));
  const int64_t blocks = (rows + per_block - 1) / per_block;
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(blocks, omp_get_max_threads()));
  BlockQueue queue(writer, tensor, offset, row_bytes, size_t(threads) + 2, size_t(std::min(per_block, rows)) * row_bytes);
  std::atomic<int64_t> next_block{0};
  auto work = [&] {
    while (true) {
      const int64_t b = next_block++;  // before taking a buffer: a thread with no block left waits for none
      if (b >= blocks) return;
      std::vector<std::byte> buffer = queue.buffer();
      if (buffer.empty()) return;  // an error stopped the piece
      const int64_t first = b * per_block, count = std::min(per_block, rows - first);
      try {
        fill(first, count, buffer.data());
      } catch (...) {
        queue.fail(std::current_exception());
        return;
      }
      queue.filled(first, count, std::move(buffer));
    }
  };
  // The OpenMP thread count (--threads), as plain threads that end with the piece: OpenMP's idle workers
  // spin between regions, on the core the pwrite needs.
  std::vector<std::thread> helpers;
  for (int64_t t = 1; t < threads; ++t) helpers.emplace_back(work);
  work();
  for (auto& h : helpers) h.join();
  queue.finish();
}

}  // namespace upcycle
