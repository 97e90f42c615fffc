// Reference MoE routing and loss kernels (ref_moe_routing.h): the layer's former host code, loop for
// loop. Every ordering is a strict total order (score, then index), so results never depend on the
// sort algorithm; combine weights are computed in double and rounded once.
#include "backend/ref/ref_moe_routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "backend/beta_distribution.h"
#include "backend/dirichlet_groups.h"
#include "backend/moe_route_rules.h"
#include "backend/op_checks.h"
#include "core/rng.h"

namespace upcycle::backend::ref {
namespace {

using Spec = Backend::MoeRouteSpec;

// Writes the kept tokens of each expert (increasing token order) as assignments, with their weights.
void write_assignments(const Backend::MoeRouteOut& out, const std::vector<std::vector<int32_t>>& kept_E,
                       const float* probs_TE, const Spec& spec) {
  const int64_t E = spec.experts;
  out.offsets[0] = 0;
  int64_t a = 0;
  for (int64_t e = 0; e < E; ++e) {
    for (int32_t t : kept_E[size_t(e)]) {
      const float p = probs_TE[t * E + e];
      out.token[a] = t;
      out.expert[a] = int32_t(e);
      out.probability[a] = p;
      out.weight[a] = moe_rules::combine_weight(p, spec.expert_choice ? 0.0 : out.topk_sum[t], spec);
      ++a;
    }
    out.offsets[e + 1] = a;
  }
}

void route_token_choice(const Backend::MoeRouteOut& out, const float* probs_TE, const float* bias_E, const Spec& spec) {
  const int64_t T = spec.tokens, E = spec.experts, K = spec.top_k;
  std::fill_n(out.counts, E, 0);
  std::vector<std::vector<int32_t>> cand_E(static_cast<size_t>(E));  // candidates in increasing token order
  std::vector<int32_t> order;
  std::vector<float> score_E(bias_E ? size_t(E) : 0);  // p + b: what selection ranks when biased
  for (int64_t t = 0; t < T; ++t) {
    const float* p_E = probs_TE + t * E;
    const float* rank_E = p_E;
    if (bias_E) {
      for (int64_t e = 0; e < E; ++e) score_E[size_t(e)] = p_E[e] + bias_E[e];
      rank_E = score_E.data();
    }
    out.topk_sum[t] = moe_rules::token_topk(out.topk + t * K, p_E, rank_E, spec, order);
    for (int64_t k = 0; k < K; ++k) {
      ++out.counts[out.topk[t * K + k]];
      cand_E[size_t(out.topk[t * K + k])].push_back(int32_t(t));
    }
  }
  out.dropped[0] = 0;
  std::vector<float> p_T(static_cast<size_t>(T));
  for (int64_t e = 0; e < E; ++e) {
    // By p, not p + b: within one expert the bias is a constant shift, so the order is the same.
    for (int64_t t = 0; t < T; ++t) p_T[size_t(t)] = probs_TE[t * E + e];
    out.dropped[0] += moe_rules::keep_capacity(cand_E[size_t(e)], p_T.data(), spec.capacity);
  }
  write_assignments(out, cand_E, probs_TE, spec);
}

void route_expert_choice(const Backend::MoeRouteOut& out, const float* probs_TE, const Spec& spec) {
  const int64_t T = spec.tokens, E = spec.experts, C = spec.capacity;
  std::fill_n(out.counts, E, C);
  out.dropped[0] = 0;
  std::vector<std::vector<int32_t>> kept_E(static_cast<size_t>(E));
  std::vector<float> p_T(static_cast<size_t>(T));
  std::vector<int32_t> order(static_cast<size_t>(T));
  for (int64_t e = 0; e < E; ++e) {
    for (int64_t t = 0; t < T; ++t) p_T[size_t(t)] = probs_TE[t * E + e];
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + C, order.end(), moe_rules::ByScore{p_T.data()});
    kept_E[size_t(e)].assign(order.begin(), order.begin() + C);
    std::sort(kept_E[size_t(e)].begin(), kept_E[size_t(e)].end());
  }
  write_assignments(out, kept_E, probs_TE, spec);
}

// ∂(Σ_a g_a·w_a)/∂p added into the double accumulator dprobs (routing held fixed).
void routing_weight_backward(double* dprobs_TE, const float* dweight_A, const Backend::MoeRouteOut& r, int64_t kept,
                             const Spec& spec) {
  const int64_t E = spec.experts, K = spec.top_k;
  if (spec.expert_choice || !spec.renormalize) {
    const double scale = spec.expert_choice ? 1.0 : spec.scaling;
    for (int64_t a = 0; a < kept; ++a) dprobs_TE[r.token[a] * E + r.expert[a]] += scale * dweight_A[a];
    return;
  }
  // w_a = s·p_a/S_t with S_t = Σ_{j ∈ topk(t)} p_j:
  //   ∂(Σ_a g_a w_a)/∂p_j = s·g_j·[j kept]/S_t − s·(Σ_{a of t} g_a·p_a)/S_t²   for every j ∈ topk(t).
  const double s = spec.scaling;
  std::vector<double> gp_T(size_t(spec.tokens), 0.0);
  for (int64_t a = 0; a < kept; ++a) {
    const int64_t t = r.token[a];
    const double S = r.topk_sum[t];
    dprobs_TE[t * E + r.expert[a]] += s * dweight_A[a] / S;
    gp_T[size_t(t)] += double(dweight_A[a]) * r.probability[a];
  }
  for (int64_t t = 0; t < spec.tokens; ++t) {
    const double S = r.topk_sum[t];
    for (int64_t k = 0; k < K; ++k) dprobs_TE[t * E + r.topk[t * K + k]] -= s * gp_T[size_t(t)] / (S * S);
  }
}

}  // namespace

void moe_jitter_forward(float* x_noisy, float* noise, const float* x, int64_t n, uint64_t seed, double jitter) {
  const CounterRng rng(seed, "moe_jitter");
  for (int64_t i = 0; i < n; ++i) {
    noise[i] = float(1.0 - jitter + 2.0 * jitter * rng.uniform(uint64_t(i)));
    x_noisy[i] = x[i] * noise[i];
  }
}

void moe_jitter_backward(float* dx, const float* dx_noisy, const float* noise, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] += dx_noisy[i] * noise[i];
}

void moe_route(const Backend::MoeRouteOut& out, const float* probs_TE, const float* bias_E, const Spec& spec) {
  check_moe_route(probs_TE, bias_E, spec);
  if (spec.expert_choice)
    route_expert_choice(out, probs_TE, spec);
  else
    route_token_choice(out, probs_TE, bias_E, spec);
}

void moe_route_backward(float* dprobs_TE, const float* dweight_A, const Backend::MoeRouteOut& routing, int64_t kept,
                        const Spec& spec, double aux_coef, const double* dirichlet_dprobs_TE, double dirichlet_coef) {
  const int64_t T = spec.tokens, E = spec.experts;
  std::vector<double> acc(size_t(T * E), 0.0);
  routing_weight_backward(acc.data(), dweight_A, routing, kept, spec);
  const int64_t A = std::accumulate(routing.counts, routing.counts + E, int64_t{0});
  if (T > 0 && A > 0 && aux_coef != 0.0) {
    // ∂L_aux/∂p[t,e] = E·count_e/(A·T).
    for (int64_t t = 0; t < T; ++t)
      for (int64_t e = 0; e < E; ++e)
        acc[size_t(t * E + e)] += aux_coef * double(E) * double(routing.counts[e]) / (double(A) * double(T));
  }
  if (dirichlet_dprobs_TE)
    for (int64_t i = 0; i < T * E; ++i) acc[size_t(i)] += dirichlet_coef * dirichlet_dprobs_TE[i];
  for (int64_t i = 0; i < T * E; ++i) dprobs_TE[i] = float(acc[size_t(i)]);
}

void moe_aux_loss(double* loss, const float* probs_TE, const int64_t* counts_E, int64_t T, int64_t E) {
  const int64_t A = std::accumulate(counts_E, counts_E + E, int64_t{0});
  loss[0] = 0.0;
  if (T == 0 || A == 0) return;
  double sum = 0.0;
  for (int64_t e = 0; e < E; ++e) {
    double mean_p = 0.0;
    for (int64_t t = 0; t < T; ++t) mean_p += probs_TE[t * E + e];
    sum += double(counts_E[e]) * mean_p / double(T);
  }
  loss[0] = sum * double(E) / double(A);
}

void logsumexp_rows(double* lse_T, const float* x_TE, int64_t T, int64_t E) {
  for (int64_t t = 0; t < T; ++t) lse_T[t] = moe_rules::logsumexp_row(x_TE + t * E, E);
}

void moe_z_loss(double* loss, const double* lse_T, int64_t T) {
  loss[0] = moe_rules::z_loss(lse_T, T);
}

void moe_z_loss_backward(float* dlogits_TE, const float* probs_TE, const double* lse_T, int64_t T, int64_t E,
                         double coef) {
  if (T == 0 || coef == 0.0) return;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t e = 0; e < E; ++e) {
      const double grad = coef * 2.0 * lse_T[t] * probs_TE[t * E + e] / double(T);
      dlogits_TE[t * E + e] = float(dlogits_TE[t * E + e] + grad);
    }
  }
}

void moe_shared_gate_forward(float* y_TD, const float* ys_TD, const float* sigma_T, int64_t T, int64_t D) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t d = 0; d < D; ++d) y_TD[t * D + d] += sigma_T[t] * ys_TD[t * D + d];
}

void moe_shared_gate_backward(float* dys_TD, float* dz_T, const float* dy_TD, const float* ys_TD,
                              const float* sigma_T, int64_t T, int64_t D) {
  for (int64_t t = 0; t < T; ++t) {
    const float s = sigma_T[t];
    double dot = 0.0;
    for (int64_t d = 0; d < D; ++d) {
      dys_TD[t * D + d] += s * dy_TD[t * D + d];
      dot += double(dy_TD[t * D + d]) * ys_TD[t * D + d];
    }
    dz_T[t] += float(dot) * (s * (1.0f - s));  // y = σ(z)·ys: ∂/∂z = (dy·ys)·σ(1−σ)
  }
}

void moe_router_stats(double* out, const float* probs_TE, int64_t T, int64_t E, bool normalize_rows) {
  double entropy = 0.0, top1 = 0.0;
  for (int64_t t = 0; t < T; ++t) {
    const float* p_E = probs_TE + t * E;
    const double norm = normalize_rows ? std::accumulate(p_E, p_E + E, 0.0) : 1.0;
    double top = 0.0;
    for (int64_t e = 0; e < E; ++e) {
      const double p = double(p_E[e]) / norm;
      if (p > 0) entropy -= p * std::log(p);
      top = std::max(top, p);
    }
    top1 += top;
  }
  out[0] = T > 0 ? entropy / double(T) : 0.0;
  out[1] = T > 0 ? top1 / double(T) : 0.0;
}

double dirichlet_prior_loss(const double* probs_TE, int64_t T, int64_t E, const double* alpha_E, double* dprobs_TE) {
  if (dprobs_TE) std::fill_n(dprobs_TE, T * E, 0.0);
  if (T == 0 || E == 0) return 0.0;
  const double total_alpha = std::accumulate(alpha_E, alpha_E + E, 0.0);
  std::vector<int64_t> order(static_cast<size_t>(T));
  double loss = 0.0;
  for (int64_t e = 0; e < E; ++e) {
    const double a = alpha_E[e], b = total_alpha - a;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t s, int64_t t) { return probs_TE[s * E + e] < probs_TE[t * E + e]; });
    for (int64_t i = 0; i < T; ++i) {
      const int64_t t = order[size_t(i)];
      const double p = probs_TE[t * E + e];
      const double gap = beta_cdf(p, a, b) - double(i + 1) / double(T + 1);
      loss += gap * gap;
      if (dprobs_TE) {
        const double at = std::clamp(p, kBetaDensityClamp, 1.0 - kBetaDensityClamp);
        dprobs_TE[t * E + e] = 2.0 / double(E * T) * gap * beta_pdf(at, a, b);
      }
    }
  }
  return loss / double(E * T);
}

double grouped_dirichlet_prior_loss(const double* probs_TE, int64_t T, int64_t E, const int32_t* prior_T,
                                    const double* alpha_PE, int64_t priors, double* dprobs_TE) {
  return grouped_prior_loss(probs_TE, T, E, prior_T, alpha_PE, priors, dprobs_TE,
                            [](const double* p, int64_t G, int64_t E_, const double* alpha, double* dp) {
                              return dirichlet_prior_loss(p, G, E_, alpha, dp);
                            });
}

void dirichlet_prior_loss_op(double* loss, double* dprobs_TE, const float* probs_TE, int64_t T, int64_t E,
                             const int32_t* domain_T, const int32_t* prior_of_domain, int64_t domains,
                             const double* alpha_PE, int64_t priors) {
  const std::vector<int32_t> prior_T = dirichlet_prior_of_tokens(domain_T, prior_of_domain, domains, priors, T);
  const std::vector<double> probs(probs_TE, probs_TE + T * E);
  loss[0] = grouped_dirichlet_prior_loss(probs.data(), T, E, domain_T ? prior_T.data() : nullptr, alpha_PE, priors,
                                         dprobs_TE);
}

}  // namespace upcycle::backend::ref
