// float32 → ggml storage types for GGUF export, as ggml's reference code (and gguf-py's
// gguf.quants.quantize, which reproduces it bit for bit) computes them: F32 copied, F16 and BF16
// rounded to nearest even (BF16 quietening NaNs, as ggml_compute_fp32_to_bf16), Q8_0 per 32-value
// block with d = max|x| / 127, quants round(x / d) with halves away from zero (quantize_row_q8_0_ref:
// x·(1/d), then roundf), d stored as f16. Non-goals: k-quants and importance-matrix quantisation
// (llama-quantize's job).
#pragma once

#include <cstddef>
#include <cstdint>

#include "io/ggml_types.h"

namespace upcycle {

bool ggml_quantizable(GgmlType type);  // F32, F16, BF16, Q8_0
// Converts n values (a whole number of blocks) of src into dst (n / block_size × block_bytes bytes).
void quantize_values(GgmlType type, const float* src, std::byte* dst, uint64_t n);

}  // namespace upcycle
