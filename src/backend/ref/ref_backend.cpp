// RefBackend: the Backend interface over the float instantiation of the reference kernels
// (ref_kernels.h). Nothing but forwarding lives here, so the float oracle and the double kernels
// the finite-difference tests use are the same source. Non-goal: any maths of its own.
#include "backend/ref/ref_backend.h"

#include "backend/ref/ref_kernels.h"
#include "backend/ref/ref_moe_routing.h"

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

void RefBackend::moe_jitter_forward(float* x_noisy, float* noise, const float* x, int64_t n, uint64_t seed,
                                    double jitter) {
  ref::moe_jitter_forward(x_noisy, noise, x, n, seed, jitter);
}

void RefBackend::moe_jitter_backward(float* dx, const float* dx_noisy, const float* noise, int64_t n) {
  ref::moe_jitter_backward(dx, dx_noisy, noise, n);
}

void RefBackend::moe_route(const MoeRouteOut& out, const float* probs_TE, const float* bias_E,
                           const MoeRouteSpec& spec) {
  ref::moe_route(out, probs_TE, bias_E, spec);
}

void RefBackend::moe_route_backward(float* dprobs_TE, const float* dweight_A, const MoeRouteOut& routing, int64_t kept,
                                    const MoeRouteSpec& spec, double aux_coef, const double* dirichlet_dprobs_TE,
                                    double dirichlet_coef) {
  ref::moe_route_backward(dprobs_TE, dweight_A, routing, kept, spec, aux_coef, dirichlet_dprobs_TE, dirichlet_coef);
}

void RefBackend::moe_aux_loss(double* loss, const float* probs_TE, const int64_t* counts_E, int64_t T, int64_t E) {
  ref::moe_aux_loss(loss, probs_TE, counts_E, T, E);
}

void RefBackend::logsumexp_rows(double* lse_T, const float* x_TE, int64_t T, int64_t E) {
  ref::logsumexp_rows(lse_T, x_TE, T, E);
}

void RefBackend::moe_z_loss(double* loss, const double* lse_T, int64_t T) { ref::moe_z_loss(loss, lse_T, T); }

void RefBackend::moe_z_loss_backward(float* dlogits_TE, const float* probs_TE, const double* lse_T, int64_t T,
                                     int64_t E, double coef) {
  ref::moe_z_loss_backward(dlogits_TE, probs_TE, lse_T, T, E, coef);
}

void RefBackend::moe_shared_gate_forward(float* y_TD, const float* ys_TD, const float* sigma_T, int64_t T,
                                         int64_t D) {
  ref::moe_shared_gate_forward(y_TD, ys_TD, sigma_T, T, D);
}

void RefBackend::moe_shared_gate_backward(float* dys_TD, float* dz_T, const float* dy_TD, const float* ys_TD,
                                          const float* sigma_T, int64_t T, int64_t D) {
  ref::moe_shared_gate_backward(dys_TD, dz_T, dy_TD, ys_TD, sigma_T, T, D);
}

void RefBackend::dirichlet_prior_loss(double* loss, double* dprobs_TE, const float* probs_TE, int64_t T, int64_t E,
                                      const int32_t* domain_T, const int32_t* prior_of_domain, int64_t domains,
                                      const double* alpha_PE, int64_t priors) {
  ref::dirichlet_prior_loss_op(loss, dprobs_TE, probs_TE, T, E, domain_T, prior_of_domain, domains, alpha_PE, priors);
}

void RefBackend::moe_router_stats(double* out, const float* probs_TE, int64_t T, int64_t E, bool normalize_rows) {
  ref::moe_router_stats(out, probs_TE, T, E, normalize_rows);
}

}  // namespace upcycle::backend
