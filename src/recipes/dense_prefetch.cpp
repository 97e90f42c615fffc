// One dense matrix read ahead (see dense_prefetch.h).
#include "recipes/dense_prefetch.h"

#include <algorithm>

namespace upcycle::recipes {

DensePrefetch::~DensePrefetch() {
  if (pending_.valid()) pending_.wait();  // its buffer and the source files must outlive the read
}

RawMatrix DensePrefetch::take(const Key& key) {
  RawMatrix matrix;
  size_t at = order_.size();
  if (pending_.valid() && order_[ahead_] == key) {
    matrix = pending_.get();
    at = ahead_;
  } else {
    if (pending_.valid()) pending_.wait();  // not wanted after all; its error, if any, is nobody's
    pending_ = {};
    const size_t from = std::min(ahead_, order_.size());
    at = size_t(std::find(order_.begin() + long(from), order_.end(), key) - order_.begin());
    matrix = read_raw(sources_.at(key.source), key.name);
  }
  if (at + 1 < order_.size()) {
    ahead_ = at + 1;
    const Key& next = order_[ahead_];
    pending_ = std::async(std::launch::async, [this, &next] { return read_raw(sources_.at(next.source), next.name); });
  }
  return matrix;
}

}  // namespace upcycle::recipes
