// ggml tensor element types as GGUF files number them (ggml.h `enum ggml_type`): each type's name,
// block size (elements per block) and block bytes, and whether upcycle can dequantise it. The table
// covers every id gguf-py 0.19 knows, so an unsupported type is reported by name ("IQ2_XXS"), not by
// number; ids that were removed from ggml (4, 5, 31–33, 36–38) and unknown ids are refused when a
// file is opened. Block layouts themselves live in ggml_dequantize*.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace upcycle {

enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ8_1 = 9,
  kQ2_K = 10, kQ3_K = 11, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kQ8_K = 15,
  kIQ2_XXS = 16, kIQ2_XS = 17, kIQ3_XXS = 18, kIQ1_S = 19, kIQ4_NL = 20, kIQ3_S = 21, kIQ2_S = 22, kIQ4_XS = 23,
  kI8 = 24, kI16 = 25, kI32 = 26, kI64 = 27, kF64 = 28, kIQ1_M = 29, kBF16 = 30,
  kTQ1_0 = 34, kTQ2_0 = 35, kMXFP4 = 39, kNVFP4 = 40, kQ1_0 = 41,
};

struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;  // as ggml and gguf-py spell it: "Q4_K", "BF16"
  uint32_t block_size;    // elements per block (1 for plain types)
  uint32_t block_bytes;   // bytes per block
  bool dequantizable;     // upcycle turns it into float32 (ggml_dequantize.h)
};

// nullptr for ids ggml does not define (or no longer defines).
const GgmlTypeInfo* ggml_type_info(uint32_t id);
const GgmlTypeInfo& ggml_type_info(GgmlType type);
// "F32, F16, BF16, Q4_0, …": the types upcycle dequantises, for error messages and --help.
std::string dequantizable_type_names();

}  // namespace upcycle
