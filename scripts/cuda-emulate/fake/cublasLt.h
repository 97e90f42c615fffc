// scripts/cuda-emulate: the cuBLASLt calls cuda_linear.cu makes, with cublasLtMatmul's documented
// semantics, D = alpha·op(A)·op(B) + beta·C on column-major layouts (element (i, j) of a rows×cols
// layout at i + j·ld), and the library's shape rules checked: m and n from C, op(A) m×k, op(B) k×n,
// ld ≥ rows, transposes set as int32. bf16 operands are read as their uint16 bits. The product is
// summed in double: this checks layouts, transposes, rounding of the operands and beta, not cuBLAS's
// own summation order. The heuristic answers one algorithm for any consistent problem.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "cuda_runtime.h"

enum cublasStatus_t { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7, CUBLAS_STATUS_NOT_SUPPORTED = 15 };
enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16BF = 14 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68 };
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasLtMatmulDescAttributes_t { CUBLASLT_MATMUL_DESC_TRANSA = 3, CUBLASLT_MATMUL_DESC_TRANSB = 4 };
enum cublasLtMatmulPreferenceAttributes_t {
  CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8,
};
struct cublasLtContext {};
typedef cublasLtContext* cublasLtHandle_t;
struct cublasLtMatmulDescOpaque_t {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  int32_t trans_a, trans_b;
};
typedef cublasLtMatmulDescOpaque_t* cublasLtMatmulDesc_t;
struct cublasLtMatrixLayoutOpaque_t {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
};
typedef cublasLtMatrixLayoutOpaque_t* cublasLtMatrixLayout_t;
struct cublasLtMatmulPreferenceOpaque_t {
  uint64_t workspace_bytes;
  uint32_t alignment[4];
};
typedef cublasLtMatmulPreferenceOpaque_t* cublasLtMatmulPreference_t;
struct cublasLtMatmulAlgo_t {
  uint64_t data[8];
};
struct cublasLtMatmulHeuristicResult_t {
  cublasLtMatmulAlgo_t algo;
  size_t workspaceSize;
  cublasStatus_t state;
  float wavesCount;
  int reserved[4];
};

namespace cuda_emulate {
inline long gemms = 0;
// The shape rule of cublasLtMatmul; false (and a message) on a mismatch.
inline bool lt_shapes(const cublasLtMatmulDescOpaque_t& d, const cublasLtMatrixLayoutOpaque_t& a,
                      const cublasLtMatrixLayoutOpaque_t& b, const cublasLtMatrixLayoutOpaque_t& c, uint64_t& m,
                      uint64_t& n, uint64_t& k) {
  m = c.rows;
  n = c.cols;
  const uint64_t a_m = d.trans_a ? a.cols : a.rows, a_k = d.trans_a ? a.rows : a.cols;
  const uint64_t b_k = d.trans_b ? b.cols : b.rows, b_n = d.trans_b ? b.rows : b.cols;
  k = a_k;
  if (a_m == m && b_n == n && b_k == a_k && a.type == b.type && c.type == CUDA_R_32F) return true;
  std::fprintf(stderr, "cuda-emulate: cublasLt shapes disagree: C %lu×%lu, op(A) %lu×%lu, op(B) %lu×%lu\n",
               (unsigned long)m, (unsigned long)n, (unsigned long)a_m, (unsigned long)a_k, (unsigned long)b_k,
               (unsigned long)b_n);
  return false;
}
inline double lt_load(const void* p, cudaDataType_t type, int64_t i) {
  if (type == CUDA_R_32F) return static_cast<const float*>(p)[i];
  return std::bit_cast<float>(uint32_t(static_cast<const uint16_t*>(p)[i]) << 16);
}
}  // namespace cuda_emulate

inline cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  *handle = new cublasLtContext;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulDescInit(cublasLtMatmulDesc_t d, cublasComputeType_t compute, cudaDataType_t scale) {
  *d = {compute, scale, 0, 0};
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                                     const void* value, size_t bytes) {
  if (bytes != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(attr == CUBLASLT_MATMUL_DESC_TRANSA ? &d->trans_a : &d->trans_b, value, bytes);
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatrixLayoutInit(cublasLtMatrixLayout_t l, cudaDataType_t type, uint64_t rows,
                                               uint64_t cols, int64_t ld) {
  *l = {type, rows, cols, ld};
  return ld >= int64_t(rows) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}
inline cublasStatus_t cublasLtMatmulPreferenceInit(cublasLtMatmulPreference_t p) {
  *p = {0, {256, 256, 256, 256}};
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                           cublasLtMatmulPreferenceAttributes_t attr, const void* value,
                                                           size_t bytes) {
  if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
    if (bytes != sizeof(uint64_t)) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(&p->workspace_bytes, value, bytes);
  } else {
    if (bytes != sizeof(uint32_t)) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(&p->alignment[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], value, bytes);
  }
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                                     cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                                     cublasLtMatrixLayout_t dl, cublasLtMatmulPreference_t, int requested,
                                                     cublasLtMatmulHeuristicResult_t* result, int* found) {
  uint64_t m, n, k;
  if (requested < 1 || !cuda_emulate::lt_shapes(*d, *a, *b, *c, m, n, k) || c->rows != dl->rows || c->cols != dl->cols)
    return CUBLAS_STATUS_INVALID_VALUE;
  *result = {};
  result->state = CUBLAS_STATUS_SUCCESS;
  *found = 1;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t d, const void* alpha, const void* A,
                                     cublasLtMatrixLayout_t a, const void* B, cublasLtMatrixLayout_t b, const void* beta,
                                     const void* C, cublasLtMatrixLayout_t c, void* D, cublasLtMatrixLayout_t dl,
                                     const cublasLtMatmulAlgo_t*, void*, size_t, cudaStream_t) {
  uint64_t m, n, k;
  if (!cuda_emulate::lt_shapes(*d, *a, *b, *c, m, n, k)) return CUBLAS_STATUS_INVALID_VALUE;
  if (d->compute != CUBLAS_COMPUTE_32F || d->scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  ++cuda_emulate::gemms;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  for (uint64_t i = 0; i < m; ++i) {
    for (uint64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (uint64_t l = 0; l < k; ++l) {
        const int64_t ai = d->trans_a ? int64_t(l + i * a->ld) : int64_t(i + l * a->ld);
        const int64_t bi = d->trans_b ? int64_t(j + l * b->ld) : int64_t(l + j * b->ld);
        acc += cuda_emulate::lt_load(A, a->type, ai) * cuda_emulate::lt_load(B, b->type, bi);
      }
      const double prior = be != 0 ? double(be) * static_cast<const float*>(C)[i + j * c->ld] : 0.0;
      static_cast<float*>(D)[i + j * dl->ld] = float(al * acc + prior);
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}
