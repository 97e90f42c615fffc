// Element type names, sizes and bit-exact float conversions (round to nearest even, NaN kept quiet).
#include "core/dtype.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "core/error.h"

namespace upcycle {
namespace {

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
};

constexpr std::array<DTypeInfo, 13> kDTypes{{
    {DType::kF32, "F32", 4},  {DType::kF16, "F16", 2}, {DType::kBF16, "BF16", 2}, {DType::kF64, "F64", 8},
    {DType::kI64, "I64", 8},  {DType::kI32, "I32", 4}, {DType::kI16, "I16", 2},   {DType::kI8, "I8", 1},
    {DType::kU8, "U8", 1},    {DType::kU16, "U16", 2}, {DType::kU32, "U32", 4},   {DType::kU64, "U64", 8},
    {DType::kBool, "BOOL", 1},
}};

constexpr std::array<std::string_view, 9> kUnsupported{"F8_E5M2",     "F8_E4M3", "F8_E8M0",  "F8_E4M3FNUZ", "F8_E5M2FNUZ",
                                                       "F4",          "F6_E2M3", "F6_E3M2",  "C64"};

// One loop per source type (the switch is outside it, not per element), so that the loops whose
// conversions allow it vectorize: bf16 → f32 does (GGUF import, reading bf16 checkpoints). Narrowing to
// F16/BF16 has its own vector functions (convert_floats).
template <typename Dst, typename Store>
void convert_from(const void* src, DType src_dtype, void* dst, size_t n, Store store) {
  auto* out = static_cast<Dst*>(dst);
  switch (src_dtype) {
    case DType::kF32: {
      const auto* in = static_cast<const float*>(src);
      for (size_t i = 0; i < n; ++i) out[i] = store(in[i]);
      return;
    }
    case DType::kF64: {
      const auto* in = static_cast<const double*>(src);
      for (size_t i = 0; i < n; ++i) out[i] = store(float(in[i]));
      return;
    }
    case DType::kBF16: {
      const auto* in = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) out[i] = store(bf16_to_f32(in[i]));
      return;
    }
    case DType::kF16: {
      const auto* in = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) out[i] = store(f16_to_f32(in[i]));
      return;
    }
    default: UPCYCLE_CHECK(false, "convert_floats from a non-float dtype");
  }
}

}  // namespace

std::string_view dtype_name(DType dtype) {
  for (const auto& info : kDTypes)
    if (info.dtype == dtype) return info.name;
  UPCYCLE_CHECK(false, "unnamed dtype");
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& info : kDTypes)
    if (info.name == name) return info.dtype;
  return std::nullopt;
}

bool dtype_is_known_unsupported(std::string_view name) {
  for (auto unsupported : kUnsupported)
    if (unsupported == name) return true;
  return false;
}

size_t dtype_size(DType dtype) {
  for (const auto& info : kDTypes)
    if (info.dtype == dtype) return info.size;
  UPCYCLE_CHECK(false, "unsized dtype");
}

bool dtype_is_float(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 || dtype == DType::kF64;
}

std::optional<DType> dtype_from_torch_name(std::string_view name) {
  if (name == "float32" || name == "float") return DType::kF32;
  if (name == "bfloat16") return DType::kBF16;
  if (name == "float16" || name == "half") return DType::kF16;
  return std::nullopt;
}

std::string_view dtype_torch_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "float32";
    case DType::kBF16: return "bfloat16";
    case DType::kF16: return "float16";
    default: UPCYCLE_CHECK(false, "no torch name for this dtype");
  }
}

uint16_t f32_to_bf16(float value) {
  uint32_t x = std::bit_cast<uint32_t>(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  uint32_t lsb = (x >> 16) & 1u;
  x += 0x7fffu + lsb;  // round to nearest, ties to even
  return static_cast<uint16_t>(x >> 16);
}

float bf16_to_f32(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

uint16_t f32_to_f16(float value) {
  uint32_t x = std::bit_cast<uint32_t>(value);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t exponent = (x >> 23) & 0xffu;
  uint32_t mantissa = x & 0x7fffffu;
  if (exponent == 0xffu) return static_cast<uint16_t>(sign | 0x7c00u | (mantissa ? 0x200u | (mantissa >> 13) : 0u));
  int32_t e = static_cast<int32_t>(exponent) - 127 + 15;
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow rounds to infinity
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);  // below half the smallest subnormal
    uint32_t full = mantissa | 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = full >> shift;
    uint32_t rest = full & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t h = sign | (static_cast<uint32_t>(e) << 10) | (mantissa >> 13);
  uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry may step into the exponent: correct
  return static_cast<uint16_t>(h);
}

float f16_to_f32(uint16_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1fu) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

namespace {

#if defined(__x86_64__)
// Compiled for F16C whatever the build's -march; called only where the CPU reports it. VCVTPS2PH
// rounds to nearest even, ignores FTZ and quietens a NaN keeping its top payload bits: f32_to_f16.
__attribute__((target("avx,f16c"))) void f32_to_f16_f16c(const float* in, std::byte* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), h);
  }
  for (; i < n; ++i) {
    const uint16_t h = f32_to_f16(in[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

// CPUID leaf 1: F16C (ECX bit 29) and AVX (bit 28), usable only when the OS saves the YMM registers
// (OSXSAVE, bit 27, and XCR0 bits 1-2). Read directly: clang 14 (the fuzz build) has no
// __builtin_cpu_supports("f16c").
bool cpu_has_f16c() {
  static const bool yes = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
    constexpr unsigned kOsxsave = 1u << 27, kAvx = 1u << 28, kF16c = 1u << 29;
    if ((ecx & (kOsxsave | kAvx | kF16c)) != (kOsxsave | kAvx | kF16c)) return false;
    unsigned xcr0_low = 0, xcr0_high = 0;
    __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    return (xcr0_low & 6u) == 6u;
  }();
  return yes;
}
#endif

// f32_to_bf16 without a branch, so that the loop below vectorises; identical results.
__attribute__((always_inline)) inline uint16_t f32_to_bf16_branchless(uint32_t x) {
  const bool nan = (x & 0x7fffffffu) > 0x7f800000u;
  const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>(nan ? ((x >> 16) | 0x40u) : rounded);
}

__attribute__((always_inline)) inline void f32_to_bf16_loop(const float* in, std::byte* out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    uint32_t x;
    std::memcpy(&x, in + i, 4);
    const uint16_t h = f32_to_bf16_branchless(x);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

#if defined(__x86_64__)
// The same loop compiled for wider registers; called only where cpu_vector_width() allows.
__attribute__((target("avx512f,avx512bw,avx512vl"))) void f32_to_bf16_avx512(const float* in, std::byte* out,
                                                                            size_t n) {
  f32_to_bf16_loop(in, out, n);
}
__attribute__((target("avx2"))) void f32_to_bf16_avx2(const float* in, std::byte* out, size_t n) {
  f32_to_bf16_loop(in, out, n);
}

enum class VectorIsa { kNone, kAvx2, kAvx512 };

// CPUID leaf 7: AVX2 (EBX bit 5), AVX512F/BW/VL (bits 16, 30, 31), each usable only when the OS saves
// the registers (XCR0 bits 1-2 for YMM, 5-7 for the opmask and ZMM state).
VectorIsa cpu_vector_isa() {
  static const VectorIsa isa = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 27))) return VectorIsa::kNone;  // OSXSAVE
    unsigned xcr0_low = 0, xcr0_high = 0;
    __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return VectorIsa::kNone;
    constexpr unsigned kAvx512 = (1u << 16) | (1u << 30) | (1u << 31);
    if ((ebx & kAvx512) == kAvx512 && (xcr0_low & 0xe6u) == 0xe6u) return VectorIsa::kAvx512;
    if ((ebx & (1u << 5)) && (xcr0_low & 6u) == 6u) return VectorIsa::kAvx2;
    return VectorIsa::kNone;
  }();
  return isa;
}
#endif

const float* f16_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < t.size(); ++h) t[h] = f16_to_f32(static_cast<uint16_t>(h));
    return t;
  }();
  return table.data();
}

}  // namespace

void f32_to_f16_n(const float* in, void* out, size_t n) {
  auto* bytes = static_cast<std::byte*>(out);
#if defined(__x86_64__)
  if (cpu_has_f16c()) return f32_to_f16_f16c(in, bytes, n);
#endif
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_f16(in[i]);
    std::memcpy(bytes + 2 * i, &h, 2);
  }
}

void f16_to_f32_n(const void* in, float* out, size_t n) {
  const auto* bytes = static_cast<const std::byte*>(in);
  const float* table = f16_table();
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, bytes + 2 * i, 2);
    out[i] = table[h];
  }
}

bool f32_to_bf16_n_with(VectorPath path, const float* in, void* out, size_t n) {
  auto* bytes = static_cast<std::byte*>(out);
  switch (path) {
    case VectorPath::kPortable: f32_to_bf16_loop(in, bytes, n); return true;
#if defined(__x86_64__)
    case VectorPath::kAvx2:
      if (cpu_vector_isa() == VectorIsa::kNone) return false;
      f32_to_bf16_avx2(in, bytes, n);
      return true;
    case VectorPath::kAvx512:
      if (cpu_vector_isa() != VectorIsa::kAvx512) return false;
      f32_to_bf16_avx512(in, bytes, n);
      return true;
#else
    default: return false;
#endif
  }
  return false;
}

void f32_to_bf16_n(const float* in, void* out, size_t n) {
#if defined(__x86_64__)
  switch (cpu_vector_isa()) {
    case VectorIsa::kAvx512: f32_to_bf16_n_with(VectorPath::kAvx512, in, out, n); return;
    case VectorIsa::kAvx2: f32_to_bf16_n_with(VectorPath::kAvx2, in, out, n); return;
    case VectorIsa::kNone: break;
  }
#endif
  f32_to_bf16_n_with(VectorPath::kPortable, in, out, n);
}

void convert_floats(const void* src, DType src_dtype, void* dst, DType dst_dtype, size_t n) {
  UPCYCLE_CHECK(dtype_is_float(src_dtype) && dtype_is_float(dst_dtype), "convert_floats needs float dtypes");
  if (src_dtype == dst_dtype) {
    std::memcpy(dst, src, n * dtype_size(src_dtype));
    return;
  }
  if (src_dtype == DType::kF16 && dst_dtype == DType::kF32) return f16_to_f32_n(src, static_cast<float*>(dst), n);
  if (dst_dtype == DType::kF16 || dst_dtype == DType::kBF16) {
    auto narrow = dst_dtype == DType::kF16 ? f32_to_f16_n : f32_to_bf16_n;
    if (src_dtype == DType::kF32) return narrow(static_cast<const float*>(src), dst, n);
    // Through fp32 in blocks: every path to F16/BF16 rounds from the f32 value, so this is exact.
    constexpr size_t kBlock = 2048;
    float block[kBlock];
    const size_t src_size = dtype_size(src_dtype);
    for (size_t done = 0; done < n; done += kBlock) {
      const size_t count = std::min(kBlock, n - done);
      convert_floats(static_cast<const std::byte*>(src) + done * src_size, src_dtype, block, DType::kF32, count);
      narrow(block, static_cast<std::byte*>(dst) + done * 2, count);
    }
    return;
  }
  switch (dst_dtype) {
    case DType::kF32: return convert_from<float>(src, src_dtype, dst, n, [](float v) { return v; });
    case DType::kF64: return convert_from<double>(src, src_dtype, dst, n, [](float v) { return double(v); });
    default: UPCYCLE_CHECK(false, "unreachable");
  }
}

}  // namespace upcycle
