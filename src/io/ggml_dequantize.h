// ggml block formats → float32, bit for bit as ggml's reference `dequantize_row_*` (ggml-quants.c)
// computes them, which gguf-py's `gguf.quants.dequantize` reproduces: the f16 scales are widened
// exactly, and each value is formed with the same float operations in the same order (e.g. Q4_1
// `q·d + m`, Q4_K `(d·sc)·q − dmin·m`), so no fused multiply-add may contract them (this library is
// built as ISO C++, where GCC does not contract across statements or expressions by default).
// Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (legacy 32-element blocks, this file's
// .cpp) and Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (256-element super-blocks, ggml_dequantize_kquants.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "io/ggml_types.h"

namespace upcycle {

// Dequantises `blocks` consecutive blocks of `type` from `src` (blocks × block_bytes bytes, any
// alignment) into `dst` (blocks × block_size floats). `type` must be dequantizable (ggml_types.h).
void dequantize_blocks(GgmlType type, const std::byte* src, float* dst, uint64_t blocks);

namespace ggml_detail {
// The k-quant kernels, defined in ggml_dequantize_kquants.cpp; one super-block of 256 values each.
void dequantize_q2_k(const std::byte* block, float* y);
void dequantize_q3_k(const std::byte* block, float* y);
void dequantize_q4_k(const std::byte* block, float* y);
void dequantize_q5_k(const std::byte* block, float* y);
void dequantize_q6_k(const std::byte* block, float* y);
// An f16 stored little-endian at `p` (any alignment), widened exactly.
float load_f16(const std::byte* p);
}  // namespace ggml_detail

}  // namespace upcycle
