// The ggml type table (see ggml_types.h). Sizes are ggml-common.h's block structs, which gguf-py's
// GGML_QUANT_SIZES repeats; QK_K = 256.
#include "io/ggml_types.h"

#include "core/error.h"

namespace upcycle {
namespace {

constexpr uint32_t kQK = 256;  // QK_K: elements of a k-quant super-block

// clang-format off
constexpr GgmlTypeInfo kTypes[] = {
    {GgmlType::kF32,     "F32",     1,   4,                                  true},
    {GgmlType::kF16,     "F16",     1,   2,                                  true},
    {GgmlType::kBF16,    "BF16",    1,   2,                                  true},
    {GgmlType::kQ4_0,    "Q4_0",    32,  2 + 16,                             true},
    {GgmlType::kQ4_1,    "Q4_1",    32,  2 + 2 + 16,                         true},
    {GgmlType::kQ5_0,    "Q5_0",    32,  2 + 4 + 16,                         true},
    {GgmlType::kQ5_1,    "Q5_1",    32,  2 + 2 + 4 + 16,                     true},
    {GgmlType::kQ8_0,    "Q8_0",    32,  2 + 32,                             true},
    {GgmlType::kQ2_K,    "Q2_K",    kQK, 2 + 2 + kQK / 16 + kQK / 4,         true},
    {GgmlType::kQ3_K,    "Q3_K",    kQK, 2 + kQK / 4 + kQK / 8 + 12,         true},
    {GgmlType::kQ4_K,    "Q4_K",    kQK, 2 + 2 + 12 + kQK / 2,               true},
    {GgmlType::kQ5_K,    "Q5_K",    kQK, 2 + 2 + 12 + kQK / 8 + kQK / 2,     true},
    {GgmlType::kQ6_K,    "Q6_K",    kQK, 2 + kQK / 2 + kQK / 4 + kQK / 16,   true},
    {GgmlType::kQ8_1,    "Q8_1",    32,  4 + 4 + 32,                         false},
    {GgmlType::kQ8_K,    "Q8_K",    kQK, 4 + kQK + kQK / 8,                  false},
    {GgmlType::kIQ2_XXS, "IQ2_XXS", kQK, 2 + kQK / 4,                        false},
    {GgmlType::kIQ2_XS,  "IQ2_XS",  kQK, 2 + kQK / 4 + kQK / 32,             false},
    {GgmlType::kIQ3_XXS, "IQ3_XXS", kQK, 2 + kQK / 4 + kQK / 8,              false},
    {GgmlType::kIQ1_S,   "IQ1_S",   kQK, 2 + kQK / 8 + kQK / 16,             false},
    {GgmlType::kIQ4_NL,  "IQ4_NL",  32,  2 + 16,                             false},
    {GgmlType::kIQ3_S,   "IQ3_S",   kQK, 2 + kQK / 4 + kQK / 8 + kQK / 32 + 4, false},
    {GgmlType::kIQ2_S,   "IQ2_S",   kQK, 2 + kQK / 4 + kQK / 16,             false},
    {GgmlType::kIQ4_XS,  "IQ4_XS",  kQK, 2 + 2 + kQK / 2 + kQK / 64,         false},
    {GgmlType::kI8,      "I8",      1,   1,                                  false},
    {GgmlType::kI16,     "I16",     1,   2,                                  false},
    {GgmlType::kI32,     "I32",     1,   4,                                  false},
    {GgmlType::kI64,     "I64",     1,   8,                                  false},
    {GgmlType::kF64,     "F64",     1,   8,                                  false},
    {GgmlType::kIQ1_M,   "IQ1_M",   kQK, kQK / 8 + kQK / 16 + kQK / 32,      false},
    {GgmlType::kTQ1_0,   "TQ1_0",   kQK, 2 + 4 * 13,                         false},
    {GgmlType::kTQ2_0,   "TQ2_0",   kQK, 2 + 64,                             false},
    {GgmlType::kMXFP4,   "MXFP4",   32,  1 + 16,                             false},
    {GgmlType::kNVFP4,   "NVFP4",   64,  4 + 32,                             false},
    {GgmlType::kQ1_0,    "Q1_0",    128, 2 + 16,                             false},
};
// clang-format on

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
  for (const auto& t : kTypes)
    if (static_cast<uint32_t>(t.type) == id) return &t;
  return nullptr;
}

const GgmlTypeInfo& ggml_type_info(GgmlType type) {
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
  UPCYCLE_CHECK(info != nullptr, "GgmlType without a table entry");
  return *info;
}

std::string dequantizable_type_names() {
  std::string names;
  for (const auto& t : kTypes)
    if (t.dequantizable) names += (names.empty() ? "" : ", ") + std::string(t.name);
  return names;
}

}  // namespace upcycle
