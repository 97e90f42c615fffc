// Double-buffered tensor writing: write() hands a computed piece of a tensor, already in the tensor's
// dtype, to a background thread that pwrites it (CheckpointWriter allows concurrent writes), while the
// caller computes the next one. At most one write is in flight: submitting the next waits for it, so
// memory is bounded by two buffers (the one being written and the one being computed), which spare()
// lets the caller swap back and forth instead of allocating (and page-faulting) one per piece. A failed write
// surfaces as the Error it threw, at the next submit or at drain(); the destructor waits too.
#pragma once

#include <cstddef>
#include <future>
#include <string>
#include <vector>

#include "io/checkpoint_writer.h"

namespace upcycle {

class WriteBehind {
 public:
  explicit WriteBehind(CheckpointWriter& writer) : writer_(writer) {}
  ~WriteBehind();
  WriteBehind(const WriteBehind&) = delete;
  WriteBehind& operator=(const WriteBehind&) = delete;

  // Like CheckpointWriter::write, but returns once the previous write finished and this one started.
  void write(std::string tensor, std::vector<std::byte> bytes, uint64_t offset = 0);
  void drain();  // waits for the write in flight; rethrows its error
  // The buffer of the last finished write, to be filled and written again (empty when there is none).
  std::vector<std::byte> spare() { return std::move(spare_); }

 private:
  CheckpointWriter& writer_;
  std::future<std::vector<std::byte>> pending_;  // hands its buffer back when written
  std::vector<std::byte> spare_;
};

}  // namespace upcycle
