// The reference kernels as function templates over the storage scalar Real (float or double): the
// maths of every op in backend.h, written once. RefBackend runs Real = float (the oracle for the cpu
// backend, and for model code); the Real = double instantiation exists so tests can take central finite
// differences in double precision, where a wrong backward term cannot hide in fp32 rounding noise.
// Invariants: shapes, semantics, argument checks and the accumulate-vs-overwrite rules are exactly
// those of backend.h; every reduction runs in double and each value is rounded to Real once, when stored
// (for Real = float this is the original RefBackend arithmetic, bit for bit). Scalar arguments (eps,
// scale, dloss, alpha) stay float, as in the Backend interface. Explicitly instantiated for float and
// double only (ref_kernels.cpp, ref_moe_kernels.cpp). Non-goals: speed, threading.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace upcycle::backend::ref {

template <typename Real>
void linear_forward(Real* y, const Real* x, const Real* w, const Real* b, int64_t M, int64_t K, int64_t N);
template <typename Real>
void linear_backward(Real* dx, Real* dw, Real* db, const Real* dy, const Real* x, const Real* w, int64_t M, int64_t K,
                     int64_t N);

template <typename Real>
void rmsnorm_forward(Real* y, Real* rstd, const Real* x, const Real* w, int64_t T, int64_t D, float eps);
template <typename Real>
void rmsnorm_backward(Real* dx, Real* dw, const Real* dy, const Real* x, const Real* w, const Real* rstd, int64_t T,
                      int64_t D);

template <typename Real>
void rope(Real* x, const Real* inv_freq, int64_t T, int64_t seq_len, int64_t n_heads, int64_t S,
          int64_t position_offset, RopeDirection direction);

template <typename Real>
void attention_forward(Real* out, Real* lse, const Real* q, const Real* k, const Real* v, const AttentionShape& shape);
template <typename Real>
void attention_backward(Real* dq, Real* dk, Real* dv, const Real* dout, const Real* q, const Real* k, const Real* v,
                        const Real* out, const Real* lse, const AttentionShape& shape);
template <typename Real>
void attention_decode(Real* out, const Real* q, const Real* k_cache, const Real* v_cache, int64_t past,
                      const AttentionShape& shape);

template <typename Real>
void swiglu_forward(Real* h, const Real* g, const Real* u, int64_t n);
template <typename Real>
void swiglu_backward(Real* dg, Real* du, const Real* dh, const Real* g, const Real* u, int64_t n);

template <typename Real>
void embedding_forward(Real* x, const Real* table, const int32_t* ids, int64_t T, int64_t D);

template <typename Real>
double cross_entropy(Real* dlogits, const Real* logits, const int32_t* targets, int64_t T, int64_t V, float dloss);

template <typename Real>
void axpy(Real* y, const Real* x, float alpha, int64_t n);

// MoE data path (ref_moe_kernels.cpp).
template <typename Real>
void softmax_rows(Real* probs, const Real* logits, int64_t T, int64_t E);
template <typename Real>
void softmax_rows_backward(Real* dlogits, const Real* dprobs, const Real* probs, int64_t T, int64_t E);
template <typename Real>
void sigmoid_forward(Real* scores, const Real* logits, int64_t n);
template <typename Real>
void sigmoid_backward(Real* dlogits, const Real* dscores, const Real* scores, int64_t n);
template <typename Real>
void gather_rows(Real* out, const Real* x, const int32_t* rows, int64_t A, int64_t T, int64_t D);
template <typename Real>
void scatter_add_rows(Real* y, const Real* x, const int32_t* rows, const Real* weights, int64_t A, int64_t T,
                      int64_t D);
template <typename Real>
void scatter_add_rows_backward(Real* dx, Real* dweights, const Real* dy, const Real* x, const int32_t* rows,
                               const Real* weights, int64_t A, int64_t T, int64_t D);
template <typename Real>
void grouped_linear_forward(Real* y, const Real* x, const Real* const* w, const int64_t* offsets, int64_t G, int64_t K,
                            int64_t N);
template <typename Real>
void grouped_linear_backward(Real* dx, Real* const* dw, const Real* dy, const Real* x, const Real* const* w,
                             const int64_t* offsets, int64_t G, int64_t K, int64_t N);

}  // namespace upcycle::backend::ref
