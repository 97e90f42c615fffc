// Dense and grouped linear layers on cuBLASLt. linear_* and grouped_linear_* round x, w and dy to bf16
// (core/dtype.h's f32_to_bf16, into GemmState scratch) and multiply bf16 × bf16 → fp32 with
// CUBLAS_COMPUTE_32F, as cpu-bf16 does; linear_*_f32 multiply the fp32 inputs with CUBLAS_COMPUTE_32F
// (plain fp32 FMA: TF32 would need CUBLAS_COMPUTE_32F_FAST_TF32). Backward products accumulate (beta = 1).
// Layout mapping: every product is written as the cpu backend writes it, row-major
// C[M,N] (+)= op(A)·op(B); a row-major matrix is the column-major matrix of its transpose, so cuBLASLt
// computes Cᵀ[N,M] = op(B)ᵀ·op(A)ᵀ: operands swapped, transposes kept, m = N, n = M, same lds.
//   y[M,N]   = x[M,K]·w[N,K]ᵀ  → Lt: opA = T on w (K×N, ld K), opB = N on x (K×M, ld K), C N×M ld N
//   dx[M,K] += dy[M,N]·w[N,K]  → Lt: opA = N on w (K×N, ld K), opB = N on dy (N×M, ld N), C K×M ld K
//   dw[N,K] += dy[M,N]ᵀ·x[M,K] → Lt: opA = N on x (K×M, ld K), opB = T on dy (N×M, ld N), C K×N ld K
// The bias is written into y first and the product added onto it; db is a deterministic column sum.
// Grouped products run one cuBLASLt call per non-empty group (cublasGemmGroupedBatchedEx has no
// bf16-input/fp32-output combination to accumulate into fp32 gradients); x and dy are rounded once
// for all groups, each group's weight just before its product.
#include <algorithm>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_gemm_state.h"
#include "backend/cuda/cuda_kernels_common.cuh"
#include "backend/op_checks.h"

namespace upcycle::backend {
namespace cuda_detail {

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // NVIDIA's recommendation for Hopper
constexpr size_t kMaxCachedAlgos = 1 << 14;          // expert row counts vary: bound the cache

// Grows a device buffer to hold `count` elements: the stream is drained first so that no queued
// kernel still reads the old one.
template <typename T>
T* grow(T*& buffer, size_t& capacity, size_t count, cudaStream_t stream) {
  if (count <= capacity) return buffer;
  UPCYCLE_CUDA_CHECK(cudaStreamSynchronize(stream));
  const size_t grown = std::max(count, capacity + capacity / 2);
  if (buffer) UPCYCLE_CUDA_CHECK(cudaFree(buffer));
  buffer = nullptr;
  capacity = 0;
  UPCYCLE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&buffer), grown * sizeof(T)));
  capacity = grown;
  return buffer;
}

}  // namespace

GemmState::GemmState(cudaStream_t s) : stream(s) {
  UPCYCLE_CUBLAS_CHECK(cublasLtCreate(&handle));
  UPCYCLE_CUDA_CHECK(cudaMalloc(&workspace, kWorkspaceBytes));
  workspace_bytes = kWorkspaceBytes;
}

// Errors are ignored here: a destructor must not throw, and the process is tearing the device down.
// The stream is not touched (the backend may already have destroyed it); cudaFree waits for the
// device before it releases memory.
GemmState::~GemmState() {
  for (uint16_t* buffer : bf16) cudaFree(buffer);
  cudaFree(partials);
  cudaFree(workspace);
  if (handle) cublasLtDestroy(handle);
}

uint16_t* GemmState::bf16_scratch(Bf16Slot slot, size_t count) {
  const size_t i = size_t(slot);
  return grow(bf16[i], bf16_capacity[i], count, stream);
}

double* GemmState::column_partials(size_t count) { return grow(partials, partials_capacity, count, stream); }

namespace {

enum class Transpose { kNo, kYes };
enum class Accumulate { kOverwrite, kAdd };  // beta = 0 or 1

cublasOperation_t lt_op(Transpose t) { return t == Transpose::kYes ? CUBLAS_OP_T : CUBLAS_OP_N; }

// The largest power of two (≤ 256, cuBLASLt's default assumption) dividing the address.
int64_t alignment_of(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  return v == 0 ? 256 : int64_t(std::min<uintptr_t>(v & (~v + 1), 256));
}

// A column-major product C[m×n, ldc] (+)= opA(A)·opB(B) over k, A and B of `in_type`, C fp32.
struct LtProduct {
  cudaDataType_t in_type;
  cublasOperation_t op_a, op_b;
  int64_t m, n, k;
  const void* a;
  int64_t lda;
  const void* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  Accumulate accumulate;
};

void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, cublasOperation_t op) {
  UPCYCLE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &op, sizeof op));
}

cublasLtMatmulAlgo_t choose_algo(GemmState& st, const LtProduct& p, cublasLtMatmulDesc_t desc,
                                 cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c) {
  const GemmKey key = {int64_t(p.in_type), int64_t(p.op_a), int64_t(p.op_b), p.m, p.n, p.k, p.lda, p.ldb, p.ldc,
                       alignment_of(p.a), alignment_of(p.b), alignment_of(p.c)};
  if (auto it = st.algos.find(key); it != st.algos.end()) return it->second;
  cublasLtMatmulPreferenceOpaque_t pref_storage;
  cublasLtMatmulPreference_t pref = &pref_storage;
  UPCYCLE_CUBLAS_CHECK(cublasLtMatmulPreferenceInit(pref));
  const uint64_t workspace = st.workspace_bytes;
  UPCYCLE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                            &workspace, sizeof workspace));
  const uint32_t align[3] = {uint32_t(key[9]), uint32_t(key[10]), uint32_t(key[11])};
  UPCYCLE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                            &align[0], sizeof align[0]));
  UPCYCLE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                            &align[1], sizeof align[1]));
  UPCYCLE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                            &align[2], sizeof align[2]));
  UPCYCLE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                            &align[2], sizeof align[2]));
  cublasLtMatmulHeuristicResult_t result = {};
  int found = 0;
  UPCYCLE_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(st.handle, desc, a, b, c, c, pref, 1, &result, &found));
  if (found < 1 || result.state != CUBLAS_STATUS_SUCCESS) {
    throw Error("cuBLASLt: no algorithm for a " + std::to_string(p.m) + "×" + std::to_string(p.n) + "×" +
                std::to_string(p.k) + (p.in_type == CUDA_R_16BF ? " bf16" : " fp32") + " product");
  }
  if (st.algos.size() >= kMaxCachedAlgos) st.algos.clear();
  st.algos.emplace(key, result.algo);
  return result.algo;
}

void run_lt(GemmState& st, const LtProduct& p) {
  if (p.m == 0 || p.n == 0) return;
  if (p.k == 0) {  // an empty inner product is 0: cuBLASLt is not asked about k = 0
    if (p.accumulate == Accumulate::kOverwrite) {
      UPCYCLE_CUDA_CHECK(cudaMemset2DAsync(p.c, size_t(p.ldc) * sizeof(float), 0, size_t(p.m) * sizeof(float),
                                           size_t(p.n), st.stream));
    }
    return;
  }
  cublasLtMatmulDescOpaque_t desc_storage;
  cublasLtMatmulDesc_t desc = &desc_storage;
  UPCYCLE_CUBLAS_CHECK(cublasLtMatmulDescInit(desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSA, p.op_a);
  set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSB, p.op_b);
  const bool a_plain = p.op_a == CUBLAS_OP_N, b_plain = p.op_b == CUBLAS_OP_N;
  cublasLtMatrixLayoutOpaque_t a_storage, b_storage, c_storage;
  cublasLtMatrixLayout_t a = &a_storage, b = &b_storage, c = &c_storage;
  UPCYCLE_CUBLAS_CHECK(cublasLtMatrixLayoutInit(a, p.in_type, uint64_t(a_plain ? p.m : p.k),
                                                uint64_t(a_plain ? p.k : p.m), p.lda));
  UPCYCLE_CUBLAS_CHECK(cublasLtMatrixLayoutInit(b, p.in_type, uint64_t(b_plain ? p.k : p.n),
                                                uint64_t(b_plain ? p.n : p.k), p.ldb));
  UPCYCLE_CUBLAS_CHECK(cublasLtMatrixLayoutInit(c, CUDA_R_32F, uint64_t(p.m), uint64_t(p.n), p.ldc));
  const cublasLtMatmulAlgo_t algo = choose_algo(st, p, desc, a, b, c);
  const float alpha = 1.0f, beta = p.accumulate == Accumulate::kAdd ? 1.0f : 0.0f;
  UPCYCLE_CUBLAS_CHECK(cublasLtMatmul(st.handle, desc, &alpha, p.a, a, p.b, b, &beta, p.c, c, p.c, c, &algo,
                                      st.workspace, st.workspace_bytes, st.stream));
}

// Row-major C[M,N] (+)= op(A)·op(B) (the cpu backend's gemm signature), as the column-major product
// Cᵀ = op(B)ᵀ·op(A)ᵀ: B becomes cuBLASLt's A and A its B, with their transposes unchanged.
void gemm_row_major(GemmState& st, cudaDataType_t in_type, Transpose trans_a, Transpose trans_b, int64_t M,
                    int64_t N, int64_t K, const void* A, int64_t lda, const void* B, int64_t ldb,
                    Accumulate accumulate, float* C, int64_t ldc) {
  run_lt(st, LtProduct{in_type, lt_op(trans_b), lt_op(trans_a), N, M, K, B, ldb, A, lda, C, ldc, accumulate});
}

enum class Precision { kBF16, kF32 };

// A GEMM operand as the product reads it: the fp32 original, or its bf16 copy in `slot`.
const void* operand(GemmState& st, Precision precision, Bf16Slot slot, const float* values, int64_t count) {
  if (precision == Precision::kF32) return values;
  uint16_t* rounded = st.bf16_scratch(slot, size_t(count));
  launch_round_to_bf16(rounded, values, count, st.stream);
  return rounded;
}

cudaDataType_t data_type(Precision precision) { return precision == Precision::kBF16 ? CUDA_R_16BF : CUDA_R_32F; }

// Element offset into an operand that is either fp32 (the original) or bf16 (its copy).
const void* offset(const void* base, Precision precision, int64_t elements) {
  const size_t bytes = size_t(elements) * (precision == Precision::kBF16 ? sizeof(uint16_t) : sizeof(float));
  return static_cast<const char*>(base) + bytes;
}

// Column sums' term for db: dy[r, c] widened to double.
struct ColumnOf {
  const float* values;
  int64_t cols;
  __device__ double operator()(int64_t r, int64_t c) const { return double(values[r * cols + c]); }
};

template <typename Unused = void>
__global__ void broadcast_rows_kernel(float* y, const float* b, int64_t M, int64_t N) {
  for (int64_t i = grid_thread_index(); i < M * N; i += grid_stride()) y[i] = b[i % N];
}

void linear_forward_in(GemmState& st, Precision precision, float* y, const float* x, const float* w, const float* b,
                       int64_t M, int64_t K, int64_t N) {
  if (M == 0 || N == 0) return;
  if (b) {  // y = b, then the product adds onto it
    broadcast_rows_kernel<<<grid_for(M * N), kThreadsPerBlock, 0, st.stream>>>(y, b, M, N);
    UPCYCLE_CUDA_LAUNCH_CHECK();
  }
  const Accumulate acc = b ? Accumulate::kAdd : Accumulate::kOverwrite;
  if (K == 0) {
    if (!b) UPCYCLE_CUDA_CHECK(cudaMemsetAsync(y, 0, size_t(M * N) * sizeof(float), st.stream));
    return;
  }
  const void* x_op = operand(st, precision, Bf16Slot::kInput, x, M * K);
  const void* w_op = operand(st, precision, Bf16Slot::kWeight, w, N * K);
  gemm_row_major(st, data_type(precision), Transpose::kNo, Transpose::kYes, M, N, K, x_op, K, w_op, K, acc, y, N);
}

// db sums the fp32 dy in both precisions: only matmul inputs are rounded.
void linear_backward_in(GemmState& st, Precision precision, float* dx, float* dw, float* db, const float* dy,
                        const float* x, const float* w, int64_t M, int64_t K, int64_t N) {
  if (M == 0 || N == 0) return;  // every product is empty (K = 0 leaves only db, below)
  const cudaDataType_t type = data_type(precision);
  if (K > 0 && (dx || dw)) {
    const void* dy_op = operand(st, precision, Bf16Slot::kGradOutput, dy, M * N);
    if (dx) {  // dx[M,K] += dy[M,N]·w[N,K]
      const void* w_op = operand(st, precision, Bf16Slot::kWeight, w, N * K);
      gemm_row_major(st, type, Transpose::kNo, Transpose::kNo, M, K, N, dy_op, N, w_op, K, Accumulate::kAdd, dx, K);
    }
    if (dw) {  // dw[N,K] += dyᵀ[N,M]·x[M,K]
      const void* x_op = operand(st, precision, Bf16Slot::kInput, x, M * K);
      gemm_row_major(st, type, Transpose::kYes, Transpose::kNo, N, K, M, dy_op, N, x_op, K, Accumulate::kAdd, dw, K);
    }
  }
  if (db) {
    double* partials = st.column_partials(size_t(column_sum_chunks(M) * N));
    launch_column_sums(db, partials, M, N, ColumnOf{dy, N}, st.stream);
  }
}

}  // namespace
}  // namespace cuda_detail

using cuda_detail::Precision;

cuda_detail::GemmState& CudaBackend::gemm_state() {
  if (!gemm_) gemm_ = std::make_unique<cuda_detail::GemmState>(stream_);
  return *gemm_;
}

void CudaBackend::linear_forward(float* y, const float* x, const float* w, const float* b, int64_t M, int64_t K,
                                 int64_t N) {
  cuda_detail::linear_forward_in(gemm_state(), Precision::kBF16, y, x, w, b, M, K, N);
}

void CudaBackend::linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                                  int64_t M, int64_t K, int64_t N) {
  cuda_detail::linear_backward_in(gemm_state(), Precision::kBF16, dx, dw, db, dy, x, w, M, K, N);
}

void CudaBackend::linear_forward_f32(float* y, const float* x, const float* w, const float* b, int64_t M, int64_t K,
                                     int64_t N) {
  cuda_detail::linear_forward_in(gemm_state(), Precision::kF32, y, x, w, b, M, K, N);
}

void CudaBackend::linear_backward_f32(float* dx, float* dw, float* db, const float* dy, const float* x,
                                      const float* w, int64_t M, int64_t K, int64_t N) {
  cuda_detail::linear_backward_in(gemm_state(), Precision::kF32, dx, dw, db, dy, x, w, M, K, N);
}

// Groups are the row ranges offsets[g]..offsets[g+1] of x/y; each runs its own product, one after
// another on the stream, so a group's result never depends on the others.
void CudaBackend::grouped_linear_forward(float* y, const float* x, const float* const* w, const int64_t* offsets,
                                         int64_t G, int64_t K, int64_t N) {
  using namespace cuda_detail;
  check_group_offsets(offsets, G);
  const int64_t A = offsets[G];
  if (N == 0 || A == 0) return;
  GemmState& st = gemm_state();
  if (K == 0) {
    UPCYCLE_CUDA_CHECK(cudaMemsetAsync(y, 0, size_t(A * N) * sizeof(float), st.stream));
    return;
  }
  const void* x_op = operand(st, Precision::kBF16, Bf16Slot::kInput, x, A * K);
  for (int64_t g = 0; g < G; ++g) {
    const int64_t rows = offsets[g + 1] - offsets[g];
    if (rows == 0) continue;
    const void* w_op = operand(st, Precision::kBF16, Bf16Slot::kWeight, w[g], N * K);
    gemm_row_major(st, CUDA_R_16BF, Transpose::kNo, Transpose::kYes, rows, N, K,
                   offset(x_op, Precision::kBF16, offsets[g] * K), K, w_op, K, Accumulate::kOverwrite,
                   y + offsets[g] * N, N);
  }
}

void CudaBackend::grouped_linear_backward(float* dx, float* const* dw, const float* dy, const float* x,
                                          const float* const* w, const int64_t* offsets, int64_t G, int64_t K,
                                          int64_t N) {
  using namespace cuda_detail;
  check_group_offsets(offsets, G);
  const int64_t A = offsets[G];
  if (K == 0 || N == 0 || A == 0) return;  // every product is empty
  bool any_dw = false;
  for (int64_t g = 0; g < G && dw; ++g) any_dw = any_dw || (dw[g] && offsets[g + 1] > offsets[g]);
  if (!dx && !any_dw) return;
  GemmState& st = gemm_state();
  const Precision bf16 = Precision::kBF16;
  const void* dy_op = operand(st, bf16, Bf16Slot::kGradOutput, dy, A * N);
  const void* x_op = any_dw ? operand(st, bf16, Bf16Slot::kInput, x, A * K) : nullptr;
  for (int64_t g = 0; g < G; ++g) {
    const int64_t rows = offsets[g + 1] - offsets[g];
    if (rows == 0) continue;
    const void* dy_g = offset(dy_op, bf16, offsets[g] * N);
    if (dx) {  // dx_g[rows,K] += dy_g[rows,N]·w[g][N,K]
      const void* w_op = operand(st, bf16, Bf16Slot::kWeight, w[g], N * K);
      gemm_row_major(st, CUDA_R_16BF, Transpose::kNo, Transpose::kNo, rows, K, N, dy_g, N, w_op, K,
                     Accumulate::kAdd, dx + offsets[g] * K, K);
    }
    if (dw && dw[g]) {  // dw[g][N,K] += dy_gᵀ[N,rows]·x_g[rows,K]
      gemm_row_major(st, CUDA_R_16BF, Transpose::kYes, Transpose::kNo, N, K, rows, dy_g, N,
                     offset(x_op, bf16, offsets[g] * K), K, Accumulate::kAdd, dw[g], K);
    }
  }
}

}  // namespace upcycle::backend
