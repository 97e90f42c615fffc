// Double-buffered tensor writing: write_f32 hands a computed fp32 buffer to a background thread that
// converts it to the tensor's dtype and pwrites it (CheckpointWriter allows concurrent writes), while
// the caller computes the next one. At most one write is in flight: submitting the next waits for it,
// so memory is bounded by two buffers (the one being written and the one being computed). A failed
// write surfaces as the Error it threw, at the next submit or at drain(); the destructor waits too.
#pragma once

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

  // Like CheckpointWriter::write_f32, but returns once the previous write finished and this one started.
  void write_f32(std::string tensor, std::vector<float> values, uint64_t first_element = 0);
  void drain();  // waits for the write in flight; rethrows its error

 private:
  CheckpointWriter& writer_;
  std::future<void> pending_;
};

}  // namespace upcycle
