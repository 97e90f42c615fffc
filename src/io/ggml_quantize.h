// float32 → ggml storage types for GGUF export, as ggml's reference code (and gguf-py's
// gguf.quants.quantize, which reproduces it bit for bit) computes them: F32 copied, F16 and BF16
// rounded to nearest even (BF16 quietening NaNs, as ggml_compute_fp32_to_bf16), Q8_0 per 32-value
// block with d = max|x| / 127, quants round(x / d) with halves away from zero (quantize_row_q8_0_ref:
// x·(1/d), then roundf), d stored as f16. Q4_0/Q4_1/Q5_0/Q5_1 and the k-quants Q2_K..Q6_K reproduce
// ggml-quants.c's quantize_row_*_ref bit for bit (what llama.cpp's quantiser writes without an
// importance matrix; judged by llama_model_quantize in tests/interop/test_gguf_kquants.py).
// Non-goals: importance-matrix quantisation and the IQ types (llama-quantize's job).
#pragma once

#include <cstddef>
#include <cstdint>

#include "io/ggml_types.h"

namespace upcycle {

bool ggml_quantizable(GgmlType type);  // F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K
// The type a row of `row_length` values takes when `type` is asked for, as llama.cpp's quantiser
// decides (llama-quant.cpp tensor_type_fallback): `type` if the row is whole blocks, else Q4_K → Q5_0,
// Q5_K → Q5_1, Q6_K → Q8_0, Q2_K/Q3_K → Q4_0, and F16 where that does not fit either.
GgmlType ggml_row_fallback(GgmlType type, int64_t row_length);
// Converts n values (a whole number of blocks) of src into dst (n / block_size × block_bytes bytes).
void quantize_values(GgmlType type, const float* src, std::byte* dst, uint64_t n);

}  // namespace upcycle
