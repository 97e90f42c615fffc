// Fuzz target (fuzz_targets.h) for the safetensors header parser. Input: 8 bytes (little-endian) give the data
// section size, the rest is the header text. upcycle::Error is the expected outcome for bad input;
// any other exception, a crash or a sanitizer report is a finding. A parsed header must satisfy the
// invariants callers rely on: sorted, tiling the data section, byte sizes matching the shapes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "io/safetensors.h"
#include "../fuzz_targets.h"

namespace upcycle::fuzz {

int fuzz_safetensors_header(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t data_size = 0;
  for (int i = 7; i >= 0; --i) data_size = (data_size << 8) | data[i];
  std::string_view text(reinterpret_cast<const char*>(data + 8), size - 8);
  try {
    auto header = upcycle::parse_safetensors_header(text, data_size, "fuzz");
    uint64_t expected = 0;
    for (const auto& t : header.tensors) {
      if (t.begin != expected || t.nbytes() != t.numel() * upcycle::dtype_size(t.dtype)) fuzz_finding("tensor does not tile the data section or its size mismatches its shape");
      expected = t.end;
    }
    if (expected != data_size) fuzz_finding("tensors do not cover the data section");
  } catch (const upcycle::Error&) {
  }
  return 0;
}

}  // namespace upcycle::fuzz
