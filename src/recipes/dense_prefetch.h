// Read-ahead of the dense FFN matrices a conversion builds experts from. Told the order in which they
// will be needed, a background thread reads the next one (pread, in its stored dtype) while the caller
// computes and writes experts from the current one, so reading overlaps compute and writing. At most one
// read runs ahead: memory holds the current matrix and the next (2 × F·D elements of the source dtype).
// A request out of order is read on the spot (correct, only not overlapped). A failed read surfaces as
// its Error at the take() that wanted the matrix; the destructor waits for a read in flight.
#pragma once

#include <future>
#include <string>
#include <vector>

#include "recipes/source_models.h"

namespace upcycle::recipes {

class DensePrefetch {
 public:
  struct Key {
    size_t source = 0;
    std::string name;
    bool operator==(const Key&) const = default;
  };
  explicit DensePrefetch(const std::vector<SourceModel>& sources) : sources_(sources) {}
  ~DensePrefetch();
  DensePrefetch(const DensePrefetch&) = delete;
  DensePrefetch& operator=(const DensePrefetch&) = delete;

  // The order in which take() will ask for matrices (before the first take()).
  void expect(std::vector<Key> order) { order_ = std::move(order); }
  // Weight `key.name` of source `key.source`; starts reading the one after it in the order.
  RawMatrix take(const Key& key);

 private:
  const std::vector<SourceModel>& sources_;
  std::vector<Key> order_;
  size_t ahead_ = 0;  // index in order_ of the read in flight (when pending_ is valid)
  std::future<RawMatrix> pending_;
};

}  // namespace upcycle::recipes
