// Tensor shapes as HF/torch spell them: row-major, outermost dimension first ([out, in] for Linear).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace upcycle {

using Shape = std::vector<int64_t>;

inline uint64_t shape_numel(const Shape& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

inline std::string shape_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace upcycle
