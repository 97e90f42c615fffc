// RefBackend: the Backend interface over the float instantiation of the reference kernels
// (ref_kernels.h). Nothing but forwarding lives here, so the float oracle and the double kernels
// the finite-difference tests use are the same source. Non-goal: any maths of its own.
#include "backend/ref/ref_backend.h"

#include "backend/ref/ref_kernels.h"

namespace upcycle::backend {

void RefBackend::linear_forward(float* y, const float* x, const float* w, const float* b, int64_t M, int64_t K,
                                int64_t N) {
  ref::linear_forward(y, x, w, b, M, K, N);
}

void RefBackend::linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                                 int64_t M, int64_t K, int64_t N) {
  ref::linear_backward(dx, dw, db, dy, x, w, M, K, N);
}

void RefBackend::rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t T, int64_t D,
                                 float eps) {
  ref::rmsnorm_forward(y, rstd, x, w, T, D, eps);
}

void RefBackend::rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                                  const float* rstd, int64_t T, int64_t D) {
  ref::rmsnorm_backward(dx, dw, dy, x, w, rstd, T, D);
}

void RefBackend::rope(float* x, const float* inv_freq, int64_t T, int64_t seq_len, int64_t n_heads, int64_t S,
                      int64_t position_offset, RopeDirection direction) {
  ref::rope(x, inv_freq, T, seq_len, n_heads, S, position_offset, direction);
}

void RefBackend::attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                   const AttentionShape& shape) {
  ref::attention_forward(out, lse, q, k, v, shape);
}

void RefBackend::attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                    const float* k, const float* v, const float* out, const float* lse,
                                    const AttentionShape& shape) {
  ref::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, shape);
}

void RefBackend::attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                                  int64_t past, const AttentionShape& shape) {
  ref::attention_decode(out, q, k_cache, v_cache, past, shape);
}

void RefBackend::swiglu_forward(float* h, const float* g, const float* u, int64_t n) {
  ref::swiglu_forward(h, g, u, n);
}

void RefBackend::swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n) {
  ref::swiglu_backward(dg, du, dh, g, u, n);
}

void RefBackend::embedding_forward(float* x, const float* table, const int32_t* ids, int64_t T, int64_t D) {
  ref::embedding_forward(x, table, ids, T, D);
}


double RefBackend::cross_entropy(float* dlogits, const float* logits, const int32_t* targets, int64_t T, int64_t V,
                                 float dloss) {
  return ref::cross_entropy(dlogits, logits, targets, T, V, dloss);
}

void RefBackend::axpy(float* y, const float* x, float alpha, int64_t n) { ref::axpy(y, x, alpha, n); }

void RefBackend::softmax_rows(float* probs, const float* logits, int64_t T, int64_t E) {
  ref::softmax_rows(probs, logits, T, E);
}

void RefBackend::softmax_rows_backward(float* dlogits, const float* dprobs, const float* probs, int64_t T,
                                       int64_t E) {
  ref::softmax_rows_backward(dlogits, dprobs, probs, T, E);
}

void RefBackend::sigmoid_forward(float* scores, const float* logits, int64_t n) {
  ref::sigmoid_forward(scores, logits, n);
}

void RefBackend::sigmoid_backward(float* dlogits, const float* dscores, const float* scores, int64_t n) {
  ref::sigmoid_backward(dlogits, dscores, scores, n);
}

void RefBackend::gather_rows(float* out, const float* x, const int32_t* rows, int64_t A, int64_t T, int64_t D) {
  ref::gather_rows(out, x, rows, A, T, D);
}

void RefBackend::scatter_add_rows(float* y, const float* x, const int32_t* rows, const float* weights, int64_t A,
                                  int64_t T, int64_t D) {
  ref::scatter_add_rows(y, x, rows, weights, A, T, D);
}

void RefBackend::scatter_add_rows_backward(float* dx, float* dweights, const float* dy, const float* x,
                                           const int32_t* rows, const float* weights, int64_t A, int64_t T,
                                           int64_t D) {
  ref::scatter_add_rows_backward(dx, dweights, dy, x, rows, weights, A, T, D);
}

void RefBackend::grouped_linear_forward(float* y, const float* x, const float* const* w, const int64_t* offsets,
                                        int64_t G, int64_t K, int64_t N) {
  ref::grouped_linear_forward(y, x, w, offsets, G, K, N);
}

void RefBackend::grouped_linear_backward(float* dx, float* const* dw, const float* dy, const float* x,
                                         const float* const* w, const int64_t* offsets, int64_t G, int64_t K,
                                         int64_t N) {
  ref::grouped_linear_backward(dx, dw, dy, x, w, offsets, G, K, N);
}

}  // namespace upcycle::backend
