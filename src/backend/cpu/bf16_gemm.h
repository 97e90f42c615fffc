// bf16 matrix products for the cpu backend's MatmulPrecision::kBF16: both fp32 operands are rounded to
// bf16 (round to nearest even, exactly core/dtype.h's f32_to_bf16) into scratch, multiplied by a oneDNN
// matmul (AVX512_BF16 vdpbf16ps where the CPU has it) and accumulated into fp32 C. Products of two bf16
// values are exact in fp32, so the only differences from fp32 math on the rounded inputs are fp32
// accumulation roundings (and the CPU flushing bf16 subnormals to zero).
// Invariants: deterministic for a fixed OpenMP thread count; oneDNN primitives are cached by shape and
// thread count, with variable row counts (expert groups) split as 64·⌊M/64⌋ + tail and the reduction
// dimension zero-padded to a multiple of 64, so the number of distinct shapes stays bounded.
// Non-goals: caching converted operands across calls (nothing tells this class when the host changes them).
#pragma once

#include <cstdint>
#include <memory>

namespace upcycle::backend::cpu_detail {

enum class Transpose { kNo, kYes };
enum class Accumulate { kOverwrite, kAdd };  // C = op(A)·op(B)  or  C += op(A)·op(B)

// out[r·out_ld + c] = bf16(in[r·in_ld + c]) for r < rows, c < cols. Vectorised, OpenMP over rows.
void round_rows_to_bf16(uint16_t* out, int64_t out_ld, const float* in, int64_t in_ld, int64_t rows, int64_t cols);

class Bf16Gemm {
 public:
  Bf16Gemm();
  ~Bf16Gemm();
  Bf16Gemm(const Bf16Gemm&) = delete;
  Bf16Gemm& operator=(const Bf16Gemm&) = delete;

  // Row-major C[M,N] (+)= op(A)[M,K] · op(B)[K,N], BLAS conventions: A is stored [M,K] (lda ≥ K) or,
  // transposed, [K,M] (lda ≥ M); likewise B. Zero M or N is a no-op; K = 0 zeroes or keeps C.
  void run(Transpose trans_a, Transpose trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
           const float* B, int64_t ldb, Accumulate accumulate, float* C, int64_t ldc);

  // A linear layer's two backward products, which share dy: dx[M,K] += dy[M,N]·w[N,K] and
  // dw[N,K] += dyᵀ[N,M]·x[M,K] (either may be null). The same bits as the two run() calls; dy is
  // rounded once for both when its packed layouts coincide (N a multiple of 64), else once per product.
  void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, int64_t M, int64_t K,
                       int64_t N);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upcycle::backend::cpu_detail
