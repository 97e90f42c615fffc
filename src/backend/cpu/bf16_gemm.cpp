// oneDNN-backed bf16 GEMM with fp32 accumulation; see bf16_gemm.h for the contract.
// Why oneDNN and not OpenBLAS: Debian's OpenBLAS 0.3.21 is built without BUILD_BFLOAT16 (cblas.h
// declares cblas_sbgemm but libopenblas exports no such symbol), while oneDNN's brgemm matmul JITs
// vdpbf16ps kernels ("brg:avx512_core_bf16"); measured ~1.8–2× sgemm per core at the model's shapes
// (docs/performance.md). Only this file includes dnnl.hpp.
#include "backend/cpu/bf16_gemm.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <initializer_list>
#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

#include "core/error.h"

namespace upcycle::backend::cpu_detail {
namespace {

constexpr int64_t kBlock = 64;  // row split and reduction padding granularity (bounds distinct shapes)

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// One row, same rounding as core/dtype.h's f32_to_bf16 (NaN stays a quiet NaN, ties to even), written
// branch-free so it vectorises; cloned per ISA because the build targets generic x86-64.
__attribute__((target_clones("avx512f", "avx2", "default"))) void round_row(uint16_t* out, const float* in,
                                                                            int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    uint32_t x;
    std::memcpy(&x, in + i, sizeof x);
    const bool nan = (x & 0x7fffffffu) > 0x7f800000u;
    const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    out[i] = static_cast<uint16_t>(nan ? ((x >> 16) | 0x40u) : rounded);
  }
}

// One matrix to round: rows × cols of `in` (stride in_ld) into `out` (stride out_ld).
struct RoundJob {
  uint16_t* out;
  int64_t out_ld;
  const float* in;
  int64_t in_ld, rows, cols;
};

// Rounds several matrices in one OpenMP region: with 2 cores shared with other work, every region
// costs a wake-up of the other thread, so the two operands of a product share one.
void round_matrices(std::initializer_list<RoundJob> jobs) {
  constexpr int64_t kChunk = 4096;  // long rows (a transposed operand can be [K, M]) split into chunks
  std::vector<std::array<int64_t, 3>> pieces;  // (job, row, first column)
  int64_t j = 0;
  for (const RoundJob& job : jobs) {
    for (int64_t r = 0; r < job.rows; ++r)
      for (int64_t c = 0; c < job.cols; c += kChunk) pieces.push_back({j, r, c});
    ++j;
  }
  const RoundJob* job_list = jobs.begin();
  const int64_t n = int64_t(pieces.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const auto [jj, r, c0] = pieces[size_t(i)];
    const RoundJob& job = job_list[jj];
    round_row(job.out + r * job.out_ld + c0, job.in + r * job.in_ld + c0, std::min(kChunk, job.cols - c0));
  }
}

}  // namespace

void round_rows_to_bf16(uint16_t* out, int64_t out_ld, const float* in, int64_t in_ld, int64_t rows, int64_t cols) {
  round_matrices({RoundJob{out, out_ld, in, in_ld, rows, cols}});
}

struct Bf16Gemm::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  // (trans_a, trans_b, M, N, Kp, ld of packed A, ldc, accumulate, threads) → primitive.
  using Key = std::array<int64_t, 9>;
  std::map<Key, dnnl::matmul> primitives;
  std::vector<uint16_t> a_bf, b_bf;  // packed bf16 operands, grown on demand

  dnnl::matmul& primitive(const Key& key) {
    auto it = primitives.find(key);
    if (it != primitives.end()) return it->second;
    const auto [ta, tb, M, N, Kp, a_ld, ldc, acc, threads] = key;
    using dt = dnnl::memory::data_type;
    const dnnl::memory::desc a({M, Kp}, dt::bf16, ta ? dnnl::memory::dims{1, a_ld} : dnnl::memory::dims{a_ld, 1});
    const dnnl::memory::desc b({Kp, N}, dt::bf16, tb ? dnnl::memory::dims{1, Kp} : dnnl::memory::dims{N, 1});
    const dnnl::memory::desc c({M, N}, dt::f32, dnnl::memory::dims{ldc, 1});
    dnnl::primitive_attr attr;
    if (acc) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, engine);
    return primitives.emplace(key, dnnl::matmul(pd)).first->second;
  }

  // C[M,N] (+)= op(A)[M,Kp]·op(B)[Kp,N] on already packed operands.
  void execute(const Key& key, uint16_t* a, uint16_t* b, float* c) {
    dnnl::matmul& mm = primitive(key);
    const auto [ta, tb, M, N, Kp, a_ld, ldc, acc, threads] = key;
    using dt = dnnl::memory::data_type;
    dnnl::memory a_mem({{M, Kp}, dt::bf16, ta ? dnnl::memory::dims{1, a_ld} : dnnl::memory::dims{a_ld, 1}}, engine, a);
    dnnl::memory b_mem({{Kp, N}, dt::bf16, tb ? dnnl::memory::dims{1, Kp} : dnnl::memory::dims{N, 1}}, engine, b);
    dnnl::memory c_mem({{M, N}, dt::f32, dnnl::memory::dims{ldc, 1}}, engine, c);
    mm.execute(stream, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
    stream.wait();
  }

  // C (+)= op(a_bf)·op(b_bf), both already packed with the reduction dimension padded to Kp (see run()).
  // Rows of op(A) vary per call for expert groups: run 64·⌊M/64⌋ rows and the tail as two fixed shapes.
  // A transposed A is strided by M, so splitting it would not bound the shapes; it runs whole.
  void multiply(bool ta, bool tb, int64_t M, int64_t N, int64_t Kp, Accumulate accumulate, float* C, int64_t ldc) {
    const int64_t a_ld = ta ? M : Kp;  // packed A: [Kp, M] if transposed, else [M, Kp]
    const int64_t threads = omp_get_max_threads(), acc = accumulate == Accumulate::kAdd ? 1 : 0;
    const int64_t main_rows = ta || M % kBlock == 0 ? M : M / kBlock * kBlock;
    if (main_rows > 0) execute({ta, tb, main_rows, N, Kp, a_ld, ldc, acc, threads}, a_bf.data(), b_bf.data(), C);
    if (main_rows < M) {
      execute({ta, tb, M - main_rows, N, Kp, a_ld, ldc, acc, threads}, a_bf.data() + main_rows * Kp, b_bf.data(),
              C + main_rows * ldc);
    }
  }
};

namespace {

// Zeroes rows [used, padded) of a packed operand stored with `ld` values per row.
void zero_rows(std::vector<uint16_t>& packed, int64_t ld, int64_t used, int64_t padded) {
  std::fill(packed.begin() + used * ld, packed.begin() + padded * ld, uint16_t(0));
}

}  // namespace

Bf16Gemm::Bf16Gemm() : impl_(std::make_unique<Impl>()) {}
Bf16Gemm::~Bf16Gemm() = default;

void Bf16Gemm::run(Transpose trans_a, Transpose trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                   const float* B, int64_t ldb, Accumulate accumulate, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const bool ta = trans_a == Transpose::kYes, tb = trans_b == Transpose::kYes;
  UPCYCLE_CHECK(lda >= (ta ? M : K) && ldb >= (tb ? K : N) && ldc >= N, "bf16 gemm: leading dimension too small");
  if (K == 0) {
    if (accumulate == Accumulate::kOverwrite)
      for (int64_t m = 0; m < M; ++m) std::fill_n(C + m * ldc, N, 0.0f);
    return;
  }
  // Pack both operands as bf16 with the reduction dimension zero-padded to Kp (zeros add nothing).
  const int64_t Kp = round_up(K, kBlock);
  Impl& s = *impl_;
  s.a_bf.resize(size_t(std::max(M * Kp, int64_t(1))));
  s.b_bf.resize(size_t(std::max(Kp * N, int64_t(1))));
  // Packed A: [Kp, M] if transposed, else [M, Kp]; packed B: [N, Kp] if transposed, else [Kp, N].
  // Stored rows × used columns of each operand:
  const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
  round_matrices({RoundJob{s.a_bf.data(), ta ? M : Kp, A, lda, a_rows, a_cols},
                  RoundJob{s.b_bf.data(), tb ? Kp : N, B, ldb, b_rows, b_cols}});
  if (Kp > K) {  // zero the padding: trailing rows of a transposed A / plain B, trailing columns otherwise
    if (ta) zero_rows(s.a_bf, M, K, Kp);
    else for (int64_t m = 0; m < M; ++m) std::fill_n(s.a_bf.data() + m * Kp + K, Kp - K, uint16_t(0));
    if (tb) for (int64_t n = 0; n < N; ++n) std::fill_n(s.b_bf.data() + n * Kp + K, Kp - K, uint16_t(0));
    else zero_rows(s.b_bf, N, K, Kp);
  }
  s.multiply(ta, tb, M, N, Kp, accumulate, C, ldc);
}

// The two run() calls this replaces: run(kNo, kNo, M, K, N, dy, N, w, K, kAdd, dx, K) and
// run(kYes, kNo, N, K, M, dy, N, x, K, kAdd, dw, K). With N a multiple of kBlock, dx's packed dy ([M, N],
// no column padding) is the first M rows of dw's ([Mp, N], rows M..Mp zero), so one rounding serves
// both; the primitives and packed bytes are those of the two calls, so the results are the same bits.
void Bf16Gemm::linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, int64_t M,
                               int64_t K, int64_t N) {
  if (!dx || !dw || M == 0 || N == 0 || K == 0 || N % kBlock != 0) {
    if (dx) run(Transpose::kNo, Transpose::kNo, M, K, N, dy, N, w, K, Accumulate::kAdd, dx, K);
    if (dw) run(Transpose::kYes, Transpose::kNo, N, K, M, dy, N, x, K, Accumulate::kAdd, dw, K);
    return;
  }
  const int64_t Mp = round_up(M, kBlock);
  Impl& s = *impl_;
  s.a_bf.resize(size_t(Mp * N));
  s.b_bf.resize(size_t(std::max(N, Mp) * K));
  round_matrices({RoundJob{s.a_bf.data(), N, dy, N, M, N}, RoundJob{s.b_bf.data(), K, w, K, N, K}});
  zero_rows(s.a_bf, N, M, Mp);
  s.multiply(false, false, M, K, N, Accumulate::kAdd, dx, K);  // dx[M,K] += dy·w
  round_matrices({RoundJob{s.b_bf.data(), K, x, K, M, K}});
  zero_rows(s.b_bf, K, M, Mp);
  s.multiply(true, false, N, K, Mp, Accumulate::kAdd, dw, K);  // dw[N,K] += dyᵀ·x
}

}  // namespace upcycle::backend::cpu_detail
