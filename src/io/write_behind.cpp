// One background write at a time (see write_behind.h).
#include "io/write_behind.h"

namespace upcycle {

WriteBehind::~WriteBehind() {
  // Only reached with a write in flight when the caller is unwinding from its own error: that error
  // is the one to report, so this write's outcome is waited for (its buffer must outlive it) and dropped.
  if (pending_.valid()) pending_.wait();
}

void WriteBehind::drain() {
  if (pending_.valid()) spare_ = pending_.get();
}

void WriteBehind::write(std::string tensor, std::vector<std::byte> bytes, uint64_t offset) {
  drain();
  pending_ = std::async(std::launch::async, [this, tensor = std::move(tensor), bytes = std::move(bytes), offset]() mutable {
    writer_.write(tensor, bytes, offset);
    return std::move(bytes);  // a capture is not moved implicitly
  });
}

}  // namespace upcycle
