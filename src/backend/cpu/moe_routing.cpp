// MoE routing and loss ops on the cpu (contract in backend.h, "MoE routing and losses"): the ref
// kernels' arithmetic with OpenMP over independent tokens or experts. Every reduction that crosses
// tokens or experts (counts, gp sums, the losses, the statistics) still runs serially in the ref's
// order over per-element terms computed in parallel, so results are bitwise those of ref_moe_routing.cpp
// for any thread count; the ranking rules are shared (backend/moe_route_rules.h).
// Non-goals: vectorised exp/log (the router is T·E values, small beside the experts' matmuls).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "backend/beta_distribution.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/dirichlet_groups.h"
#include "backend/moe_route_rules.h"
#include "backend/op_checks.h"
#include "core/rng.h"

namespace upcycle::backend {
namespace {

using Spec = Backend::MoeRouteSpec;

// Assignments of each expert's kept tokens (increasing token order), experts in parallel once the
// offsets are known.
void write_assignments(const Backend::MoeRouteOut& out, const std::vector<std::vector<int32_t>>& kept_E,
                       const float* probs_TE, const Spec& spec) {
  const int64_t E = spec.experts;
  out.offsets[0] = 0;
  for (int64_t e = 0; e < E; ++e) out.offsets[e + 1] = out.offsets[e] + int64_t(kept_E[size_t(e)].size());
#pragma omp parallel for schedule(static)
  for (int64_t e = 0; e < E; ++e) {
    int64_t a = out.offsets[e];
    for (int32_t t : kept_E[size_t(e)]) {
      const float p = probs_TE[t * E + e];
      out.token[a] = t;
      out.expert[a] = int32_t(e);
      out.probability[a] = p;
      out.weight[a] = moe_rules::combine_weight(p, spec.expert_choice ? 0.0 : out.topk_sum[t], spec);
      ++a;
    }
  }
}

// Expert e's column of p.
void column(std::vector<float>& p_T, const float* probs_TE, int64_t T, int64_t E, int64_t e) {
  p_T.resize(size_t(T));
  for (int64_t t = 0; t < T; ++t) p_T[size_t(t)] = probs_TE[t * E + e];
}

void route_token_choice(const Backend::MoeRouteOut& out, const float* probs_TE, const float* bias_E, const Spec& spec) {
  const int64_t T = spec.tokens, E = spec.experts, K = spec.top_k;
#pragma omp parallel
  {
    std::vector<int32_t> order;
    std::vector<float> score_E(bias_E ? size_t(E) : 0);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      const float* p_E = probs_TE + t * E;
      const float* rank_E = p_E;
      if (bias_E) {
        for (int64_t e = 0; e < E; ++e) score_E[size_t(e)] = p_E[e] + bias_E[e];
        rank_E = score_E.data();
      }
      out.topk_sum[t] = moe_rules::token_topk(out.topk + t * K, p_E, rank_E, spec, order);
    }
  }
  std::fill_n(out.counts, E, 0);
  std::vector<std::vector<int32_t>> cand_E(static_cast<size_t>(E));  // increasing token order
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t k = 0; k < K; ++k) {
      ++out.counts[out.topk[t * K + k]];
      cand_E[size_t(out.topk[t * K + k])].push_back(int32_t(t));
    }
  }
  std::vector<int64_t> dropped_E(size_t(E), 0);
#pragma omp parallel
  {
    std::vector<float> p_T;
#pragma omp for schedule(dynamic)
    for (int64_t e = 0; e < E; ++e) {
      if (int64_t(cand_E[size_t(e)].size()) <= spec.capacity) continue;
      column(p_T, probs_TE, T, E, e);
      dropped_E[size_t(e)] = moe_rules::keep_capacity(cand_E[size_t(e)], p_T.data(), spec.capacity);
    }
  }
  out.dropped[0] = std::accumulate(dropped_E.begin(), dropped_E.end(), int64_t{0});
  write_assignments(out, cand_E, probs_TE, spec);
}

void route_expert_choice(const Backend::MoeRouteOut& out, const float* probs_TE, const Spec& spec) {
  const int64_t T = spec.tokens, E = spec.experts, C = spec.capacity;
  std::fill_n(out.counts, E, C);
  out.dropped[0] = 0;
  std::vector<std::vector<int32_t>> kept_E(static_cast<size_t>(E));
#pragma omp parallel
  {
    std::vector<float> p_T;
    std::vector<int32_t> order(static_cast<size_t>(T));
#pragma omp for schedule(dynamic)
    for (int64_t e = 0; e < E; ++e) {
      column(p_T, probs_TE, T, E, e);
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + C, order.end(), moe_rules::ByScore{p_T.data()});
      kept_E[size_t(e)].assign(order.begin(), order.begin() + C);
      std::sort(kept_E[size_t(e)].begin(), kept_E[size_t(e)].end());
    }
  }
  write_assignments(out, kept_E, probs_TE, spec);
}

// One prior's loss over G tokens (the ref's dirichlet_prior_loss): each expert's sort and Beta CDFs in
// parallel, the squared gaps summed serially in the ref's order (expert, then rank).
double prior_loss(const double* probs_GE, int64_t G, int64_t E, const double* alpha_E, double* dprobs_GE) {
  if (dprobs_GE) std::fill_n(dprobs_GE, G * E, 0.0);
  if (G == 0 || E == 0) return 0.0;
  const double total_alpha = std::accumulate(alpha_E, alpha_E + E, 0.0);
  std::vector<double> sq_EG(size_t(E * G));
#pragma omp parallel
  {
    std::vector<int64_t> order(static_cast<size_t>(G));
#pragma omp for schedule(dynamic)
    for (int64_t e = 0; e < E; ++e) {
      const double a = alpha_E[e], b = total_alpha - a;
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t s, int64_t t) { return probs_GE[s * E + e] < probs_GE[t * E + e]; });
      for (int64_t i = 0; i < G; ++i) {
        const int64_t t = order[size_t(i)];
        const double p = probs_GE[t * E + e];
        const double gap = beta_cdf(p, a, b) - double(i + 1) / double(G + 1);
        sq_EG[size_t(e * G + i)] = gap * gap;
        if (dprobs_GE) {
          const double at = std::clamp(p, kBetaDensityClamp, 1.0 - kBetaDensityClamp);
          dprobs_GE[t * E + e] = 2.0 / double(E * G) * gap * beta_pdf(at, a, b);
        }
      }
    }
  }
  double loss = 0.0;
  for (double v : sq_EG) loss += v;
  return loss / double(E * G);
}

}  // namespace

void CpuBackend::moe_jitter_forward(float* x_noisy, float* noise, const float* x, int64_t n, uint64_t seed,
                                    double jitter) {
  const CounterRng rng(seed, "moe_jitter");
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    noise[i] = float(1.0 - jitter + 2.0 * jitter * rng.uniform(uint64_t(i)));
    x_noisy[i] = x[i] * noise[i];
  }
}

void CpuBackend::moe_jitter_backward(float* dx, const float* dx_noisy, const float* noise, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] += dx_noisy[i] * noise[i];
}

void CpuBackend::moe_route(const MoeRouteOut& out, const float* probs_TE, const float* bias_E,
                           const MoeRouteSpec& spec) {
  check_moe_route(probs_TE, bias_E, spec);
  if (spec.expert_choice)
    route_expert_choice(out, probs_TE, spec);
  else
    route_token_choice(out, probs_TE, bias_E, spec);
}

void CpuBackend::moe_route_backward(float* dprobs_TE, const float* dweight_A, const MoeRouteOut& r, int64_t kept,
                                    const MoeRouteSpec& spec, double aux_coef, const double* dirichlet_dprobs_TE,
                                    double dirichlet_coef) {
  const int64_t T = spec.tokens, E = spec.experts, K = spec.top_k;
  // Phase by phase as the ref, so each element sees the same additions in the same order.
  std::vector<double> acc(size_t(T * E), 0.0);
  if (spec.expert_choice || !spec.renormalize) {
    const double scale = spec.expert_choice ? 1.0 : spec.scaling;
#pragma omp parallel for schedule(static)
    for (int64_t a = 0; a < kept; ++a) acc[size_t(r.token[a] * E + r.expert[a])] += scale * dweight_A[a];  // distinct (t, e)
  } else {
    const double s = spec.scaling;
    std::vector<double> gp_T(size_t(T), 0.0);
    for (int64_t a = 0; a < kept; ++a) {
      const int64_t t = r.token[a];
      acc[size_t(t * E + r.expert[a])] += s * dweight_A[a] / r.topk_sum[t];
      gp_T[size_t(t)] += double(dweight_A[a]) * r.probability[a];
    }
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      const double S = r.topk_sum[t];
      for (int64_t k = 0; k < K; ++k) acc[size_t(t * E + r.topk[t * K + k])] -= s * gp_T[size_t(t)] / (S * S);
    }
  }
  const int64_t A = std::accumulate(r.counts, r.counts + E, int64_t{0});
  const bool aux = T > 0 && A > 0 && aux_coef != 0.0;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t e = 0; e < E; ++e) {
      const size_t i = size_t(t * E + e);
      if (aux) acc[i] += aux_coef * double(E) * double(r.counts[e]) / (double(A) * double(T));
      if (dirichlet_dprobs_TE) acc[i] += dirichlet_coef * dirichlet_dprobs_TE[i];
      dprobs_TE[i] = float(acc[i]);
    }
  }
}

void CpuBackend::moe_aux_loss(double* loss, const float* probs_TE, const int64_t* counts_E, int64_t T, int64_t E) {
  const int64_t A = std::accumulate(counts_E, counts_E + E, int64_t{0});
  loss[0] = 0.0;
  if (T == 0 || A == 0) return;
  std::vector<double> column_sum(size_t(E), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t e = 0; e < E; ++e)
    for (int64_t t = 0; t < T; ++t) column_sum[size_t(e)] += probs_TE[t * E + e];
  double sum = 0.0;
  for (int64_t e = 0; e < E; ++e) sum += double(counts_E[e]) * column_sum[size_t(e)] / double(T);
  loss[0] = sum * double(E) / double(A);
}

void CpuBackend::logsumexp_rows(double* lse_T, const float* x_TE, int64_t T, int64_t E) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) lse_T[t] = moe_rules::logsumexp_row(x_TE + t * E, E);
}

void CpuBackend::moe_z_loss(double* loss, const double* lse_T, int64_t T) {
  loss[0] = moe_rules::z_loss(lse_T, T);
}

void CpuBackend::moe_z_loss_backward(float* dlogits_TE, const float* probs_TE, const double* lse_T, int64_t T,
                                     int64_t E, double coef) {
  if (T == 0 || coef == 0.0) return;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t e = 0; e < E; ++e) {
      const double grad = coef * 2.0 * lse_T[t] * probs_TE[t * E + e] / double(T);
      dlogits_TE[t * E + e] = float(dlogits_TE[t * E + e] + grad);
    }
  }
}

void CpuBackend::moe_shared_gate_forward(float* y_TD, const float* ys_TD, const float* sigma_T, int64_t T,
                                         int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t)
    for (int64_t d = 0; d < D; ++d) y_TD[t * D + d] += sigma_T[t] * ys_TD[t * D + d];
}

void CpuBackend::moe_shared_gate_backward(float* dys_TD, float* dz_T, const float* dy_TD, const float* ys_TD,
                                          const float* sigma_T, int64_t T, int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float s = sigma_T[t];
    double dot = 0.0;
    for (int64_t d = 0; d < D; ++d) {
      dys_TD[t * D + d] += s * dy_TD[t * D + d];
      dot += double(dy_TD[t * D + d]) * ys_TD[t * D + d];
    }
    dz_T[t] += float(dot) * (s * (1.0f - s));
  }
}

void CpuBackend::dirichlet_prior_loss(double* loss, double* dprobs_TE, const float* probs_TE, int64_t T, int64_t E,
                                      const int32_t* domain_T, const int32_t* prior_of_domain, int64_t domains,
                                      const double* alpha_PE, int64_t priors) {
  const std::vector<int32_t> prior_T = dirichlet_prior_of_tokens(domain_T, prior_of_domain, domains, priors, T);
  const std::vector<double> probs(probs_TE, probs_TE + T * E);
  loss[0] = grouped_prior_loss(probs.data(), T, E, domain_T ? prior_T.data() : nullptr, alpha_PE, priors, dprobs_TE,
                               prior_loss);
}

void CpuBackend::moe_router_stats(double* out, const float* probs_TE, int64_t T, int64_t E, bool normalize_rows) {
  // −p·log p per element and each row's max in parallel; the two sums serially in the ref's order.
  std::vector<double> plogp_TE(size_t(T * E)), top_T(static_cast<size_t>(T));
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* p_E = probs_TE + t * E;
    const double norm = normalize_rows ? std::accumulate(p_E, p_E + E, 0.0) : 1.0;
    double top = 0.0;
    for (int64_t e = 0; e < E; ++e) {
      const double p = double(p_E[e]) / norm;
      plogp_TE[size_t(t * E + e)] = p > 0 ? p * std::log(p) : 0.0;
      top = std::max(top, p);
    }
    top_T[size_t(t)] = top;
  }
  double entropy = 0.0, top1 = 0.0;
  // A skipped element (p = 0) contributes +0, and x − (+0) = x: the same bits as the ref's `if (p > 0)`.
  for (double v : plogp_TE) entropy -= v;
  for (int64_t t = 0; t < T; ++t) top1 += top_T[size_t(t)];
  out[0] = T > 0 ? entropy / double(T) : 0.0;
  out[1] = T > 0 ? top1 / double(T) : 0.0;
}

}  // namespace upcycle::backend
