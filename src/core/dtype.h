// Element types as spelled in safetensors headers, their sizes, and conversions between the compute
// floats (F32, F16, BF16). Conversions round to nearest even and keep NaN/Inf, matching PyTorch's
// `tensor.to(dtype)`. Non-float dtypes (I64, U8, BOOL, ...) are carried through untouched, never converted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace upcycle {

enum class DType : uint8_t { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kU16, kU32, kU64, kBool };

std::string_view dtype_name(DType dtype);                  // "F32", "BF16", ...
std::optional<DType> dtype_from_name(std::string_view name);  // nullopt for unknown or unsupported names
// True for dtype strings the safetensors format defines that upcycle cannot compute with or carry
// (F8_*, F6_*, F4, C64): callers turn this into an "unsupported dtype" error rather than "unknown".
bool dtype_is_known_unsupported(std::string_view name);
size_t dtype_size(DType dtype);
bool dtype_is_float(DType dtype);  // F32, F16, BF16, F64: values convert_floats accepts

// torch_dtype / dtype strings in config.json ("bfloat16", "float32", "float16").
std::optional<DType> dtype_from_torch_name(std::string_view name);
std::string_view dtype_torch_name(DType dtype);

uint16_t f32_to_bf16(float value);
float bf16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);
float f16_to_f32(uint16_t bits);
// n values at a time, bit for bit the same as the scalar functions above (GGUF export and import move
// billions of them): f32 → f16 with the CPU's F16C conversion where it has one (round to nearest even,
// NaN quietened as above), f16 → f32 through a 65,536-entry table. Pointers need no alignment.
void f32_to_f16_n(const float* in, void* out, size_t n);
void f16_to_f32_n(const void* in, float* out, size_t n);
// f32 → bf16, n at a time, bit for bit f32_to_bf16: integer rounding in AVX-512 or AVX2 registers
// (whichever the CPU has, chosen at run time; a portable loop otherwise). Not AVX512-BF16's
// VCVTNEPS2BF16, which flushes subnormal inputs to zero where f32_to_bf16 rounds them.
void f32_to_bf16_n(const float* in, void* out, size_t n);
// For tests: f32_to_bf16_n forced through one implementation; false (nothing written) when this CPU
// or build lacks it.
enum class VectorPath { kPortable, kAvx2, kAvx512 };
bool f32_to_bf16_n_with(VectorPath path, const float* in, void* out, size_t n);

// Converts n elements between float dtypes (any of F32/F16/BF16/F64 to any other). Same dtype copies.
// Conversions to F16 or BF16 run through the vector functions above (from F64/F16/BF16 via an fp32
// block on the stack): the same bits as the scalar functions, composed as bf16 → f32 → f16 etc.
void convert_floats(const void* src, DType src_dtype, void* dst, DType dst_dtype, size_t n);

}  // namespace upcycle
