// One background write at a time (see write_behind.h).
#include "io/write_behind.h"

namespace upcycle {

WriteBehind::~WriteBehind() {
  // Only reached with a write in flight when the caller is unwinding from its own error: that error
  // is the one to report, so this write's outcome is waited for (its buffer must outlive it) and dropped.
  if (pending_.valid()) pending_.wait();
}

void WriteBehind::drain() {
  if (pending_.valid()) pending_.get();
}

void WriteBehind::write_f32(std::string tensor, std::vector<float> values, uint64_t first_element) {
  drain();
  pending_ = std::async(std::launch::async, [this, tensor = std::move(tensor), values = std::move(values), first_element] {
    writer_.write_f32(tensor, values, first_element);
  });
}

}  // namespace upcycle
