// MoE block forward/backward (contract in moe_layer.h): router → route (moe_routing) → gather → grouped
// gate/up linears → SwiGLU → grouped down linear → weighted scatter-add, plus the shared expert.
// Invariants: all matmuls and the data path go through backend ops; the routing decision, the losses,
// jitter noise and the small per-token scalars (T·E or T values) are computed on the host, since ref and
// cpu keep tensors in host memory. Routing decisions are constants for differentiation.
// Non-goals: expert parallelism, token dropping by anything but capacity, activation recomputation.
#include "model/moe_layer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "model/dirichlet_prior.h"
#include "model/moe_routing.h"

namespace upcycle::model {

// Activations kept from forward for backward (host vectors: see the file header).
struct MoeLayer::Saved {
  int64_t T = 0;
  bool jittered = false;
  std::vector<float> noise_TD, x_router_TD;  // jitter only
  std::vector<float> probs_TE;
  std::vector<double> lse_T;
  std::vector<double> dirichlet_dprobs_TE;  // ∂L_dir/∂p, when dirichlet_coef ≠ 0
  Routing routing;
  std::vector<float> x_AD, gate_AF, up_AF, h_AF, y_AD;               // routed experts
  std::vector<float> gate_TFs, up_TFs, h_TFs, y_TD, sigma_T;          // shared expert
  std::vector<int32_t> identity_T;                                    // rows 0..T-1 for per-token scaling
};

namespace {

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// Per-expert gradient pointers for grouped_linear_backward: null when the caller passed none.
float* const* grad_ptrs(std::vector<float*>& v) { return v.empty() ? nullptr : v.data(); }

}  // namespace

MoeLayer::MoeLayer(backend::Backend& backend, MoeOptions options, MoeDims dims)
    : backend_(backend), options_(options), dims_(dims), saved_(std::make_shared<Saved>()) {
  UPCYCLE_CHECK(options_.num_experts > 0, "MoE: num_experts must be positive");
  UPCYCLE_CHECK(dims_.hidden > 0 && dims_.expert_width > 0 && dims_.shared_width >= 0, "MoE: bad dims");
  UPCYCLE_CHECK(options_.jitter >= 0 && options_.jitter < 1, "MoE: jitter must be in [0, 1)");
  if (options_.mode == RoutingMode::kTokenChoice) {
    UPCYCLE_CHECK(options_.top_k >= 1 && options_.top_k <= options_.num_experts, "MoE: top_k outside [1, E]");
    UPCYCLE_CHECK(options_.capacity_factor >= 0, "MoE: negative capacity factor");
  } else {
    UPCYCLE_CHECK(options_.scoring == RouterScoring::kSoftmax, "MoE: expert choice needs softmax scores");
    UPCYCLE_CHECK(options_.capacity_factor > 0, "MoE: expert choice needs capacity_factor > 0");
  }
  UPCYCLE_CHECK(options_.dirichlet_alpha_E.empty() ||
                    (int64_t(options_.dirichlet_alpha_E.size()) == options_.num_experts && options_.num_experts >= 2),
                "MoE: the Dirichlet prior needs one α per expert and at least 2 experts");
  UPCYCLE_CHECK(options_.dirichlet_domain_alpha_DE.empty() || options_.dirichlet_alpha_E.empty(),
                "MoE: a Dirichlet prior for every token or per domain, not both");
  for (const auto& alpha_E : options_.dirichlet_domain_alpha_DE)
    UPCYCLE_CHECK(int64_t(alpha_E.size()) == options_.num_experts && options_.num_experts >= 2,
                  "MoE: each domain's Dirichlet prior needs one α per expert and at least 2 experts");
}

void MoeLayer::forward(float* y, const float* x, int64_t T, const MoeWeights& w, Phase phase, uint64_t seed,
                       const int32_t* domain_T) {
  const int64_t D = dims_.hidden, E = options_.num_experts;
  UPCYCLE_CHECK(w.router_ED && int64_t(w.gate_FD.size()) == E && int64_t(w.up_FD.size()) == E &&
                    int64_t(w.down_DF.size()) == E,
                "MoE: router and one gate/up/down weight per expert required");
  UPCYCLE_CHECK(dims_.shared_width == 0 || (w.shared_gate_FsD && w.shared_up_FsD && w.shared_down_DFs),
                "MoE: shared expert weights missing");
  Saved& s = *saved_;
  s.T = T;
  s.jittered = phase == Phase::kTraining && options_.jitter > 0;
  const float* x_router = x;
  if (s.jittered) {
    // Multiplicative noise on the router input only; counter i of the stream is element i of x.
    const CounterRng rng(seed, "moe_jitter");
    const double j = options_.jitter;
    s.noise_TD.resize(size_t(T * D));
    s.x_router_TD.resize(size_t(T * D));
    for (int64_t i = 0; i < T * D; ++i) {
      s.noise_TD[size_t(i)] = float(1.0 - j + 2.0 * j * rng.uniform(uint64_t(i)));
      s.x_router_TD[size_t(i)] = x[i] * s.noise_TD[size_t(i)];
    }
    x_router = s.x_router_TD.data();
  }
  std::vector<float> logits_TE(size_t(T * E));
  backend_.linear_forward_f32(logits_TE.data(), x_router, w.router_ED, nullptr, T, D, E);  // fp32: picks top-k
  s.probs_TE.resize(logits_TE.size());
  const bool softmax = options_.scoring == RouterScoring::kSoftmax;
  if (softmax)
    backend_.softmax_rows(s.probs_TE.data(), logits_TE.data(), T, E);
  else
    backend_.sigmoid_forward(s.probs_TE.data(), logits_TE.data(), T * E);
  stats_.z_loss = softmax ? z_loss(logits_TE.data(), T, E, s.lse_T) : 0.0;  // sigmoid: none (header)
  s.routing = route(s.probs_TE.data(), T, options_, w.selection_bias_E);  // the bias only picks experts
  stats_.aux_loss = softmax ? aux_loss(s.probs_TE.data(), T, E, s.routing.counts_E) : 0.0;
  dirichlet_forward(domain_T);

  std::fill_n(y, T * D, 0.0f);
  experts_forward(y, x, w);
  if (dims_.shared_width > 0) shared_forward(y, x, w);
  fill_stats();
}

void MoeLayer::dirichlet_forward(const int32_t* domain_T) {
  Saved& s = *saved_;
  stats_.dirichlet_loss = 0.0;
  s.dirichlet_dprobs_TE.clear();
  const bool per_domain = !options_.dirichlet_domain_alpha_DE.empty();
  if (!options_.has_dirichlet_prior() || (per_domain && !domain_T)) return;
  const std::vector<double> probs_TE(s.probs_TE.begin(), s.probs_TE.end());
  if (options_.dirichlet_coef != 0) s.dirichlet_dprobs_TE.resize(probs_TE.size());
  double* dprobs_TE = s.dirichlet_dprobs_TE.empty() ? nullptr : s.dirichlet_dprobs_TE.data();
  const int64_t E = options_.num_experts;
  stats_.dirichlet_loss =
      per_domain ? domain_dirichlet_prior_loss(probs_TE.data(), s.T, E, options_.dirichlet_domain_alpha_DE, domain_T,
                                               dprobs_TE)
                 : dirichlet_prior_loss(probs_TE.data(), s.T, E, options_.dirichlet_alpha_E, dprobs_TE);
}

void MoeLayer::experts_forward(float* y, const float* x, const MoeWeights& w) {
  Saved& s = *saved_;
  const Routing& r = s.routing;
  const int64_t D = dims_.hidden, F = dims_.expert_width, E = options_.num_experts, A = r.kept();
  s.x_AD.resize(size_t(A * D));
  s.gate_AF.resize(size_t(A * F));
  s.up_AF.resize(size_t(A * F));
  s.h_AF.resize(size_t(A * F));
  s.y_AD.resize(size_t(A * D));
  backend_.gather_rows(s.x_AD.data(), x, r.token.data(), A, s.T, D);
  backend_.grouped_linear_forward(s.gate_AF.data(), s.x_AD.data(), w.gate_FD.data(), r.offsets.data(), E, D, F);
  backend_.grouped_linear_forward(s.up_AF.data(), s.x_AD.data(), w.up_FD.data(), r.offsets.data(), E, D, F);
  backend_.swiglu_forward(s.h_AF.data(), s.gate_AF.data(), s.up_AF.data(), A * F);
  backend_.grouped_linear_forward(s.y_AD.data(), s.h_AF.data(), w.down_DF.data(), r.offsets.data(), E, F, D);
  backend_.scatter_add_rows(y, s.y_AD.data(), r.token.data(), r.weight.data(), A, s.T, D);
}

void MoeLayer::shared_forward(float* y, const float* x, const MoeWeights& w) {
  Saved& s = *saved_;
  const int64_t T = s.T, D = dims_.hidden, Fs = dims_.shared_width;
  s.gate_TFs.resize(size_t(T * Fs));
  s.up_TFs.resize(size_t(T * Fs));
  s.h_TFs.resize(size_t(T * Fs));
  s.y_TD.resize(size_t(T * D));
  backend_.linear_forward(s.gate_TFs.data(), x, w.shared_gate_FsD, nullptr, T, D, Fs);
  backend_.linear_forward(s.up_TFs.data(), x, w.shared_up_FsD, nullptr, T, D, Fs);
  backend_.swiglu_forward(s.h_TFs.data(), s.gate_TFs.data(), s.up_TFs.data(), T * Fs);
  backend_.linear_forward(s.y_TD.data(), s.h_TFs.data(), w.shared_down_DFs, nullptr, T, Fs, D);
  if (!w.shared_expert_gate_1D) {
    s.sigma_T.clear();
    backend_.axpy(y, s.y_TD.data(), 1.0f, T * D);
    return;
  }
  // Qwen2-MoE: y += sigmoid(x·w_gᵀ) · shared(x), a per-token scale = scatter onto the identity rows.
  s.sigma_T.resize(static_cast<size_t>(T));
  backend_.linear_forward(s.sigma_T.data(), x, w.shared_expert_gate_1D, nullptr, T, D, 1);
  for (float& v : s.sigma_T) v = float(sigmoid(v));
  s.identity_T.resize(static_cast<size_t>(T));
  std::iota(s.identity_T.begin(), s.identity_T.end(), 0);
  backend_.scatter_add_rows(y, s.y_TD.data(), s.identity_T.data(), s.sigma_T.data(), T, T, D);
}

void MoeLayer::fill_stats() {
  const Saved& s = *saved_;
  const Routing& r = s.routing;
  const int64_t T = s.T, E = options_.num_experts;
  stats_.tokens_per_expert.resize(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) stats_.tokens_per_expert[size_t(e)] = r.offsets[size_t(e + 1)] - r.offsets[size_t(e)];
  stats_.assignments = r.assignments;
  stats_.dropped = r.dropped;
  double entropy = 0.0, top1 = 0.0;
  const bool softmax = options_.scoring == RouterScoring::kSoftmax;
  for (int64_t t = 0; t < T; ++t) {
    const float* p_E = s.probs_TE.data() + t * E;
    // Sigmoid scores are no distribution: the statistics read them normalised per token.
    const double norm = softmax ? 1.0 : std::accumulate(p_E, p_E + E, 0.0);
    double top = 0.0;
    for (int64_t e = 0; e < E; ++e) {
      const double p = double(p_E[e]) / norm;
      if (p > 0) entropy -= p * std::log(p);
      top = std::max(top, p);
    }
    top1 += top;
  }
  stats_.router_entropy = T > 0 ? entropy / double(T) : 0.0;
  stats_.top1_probability = T > 0 ? top1 / double(T) : 0.0;
}

void MoeLayer::backward(float* dx, MoeGrads& grads, const float* dy, const float* x, const MoeWeights& w) {
  const int64_t E = options_.num_experts;
  UPCYCLE_CHECK(saved_->routing.experts == E, "MoE: backward without a forward");
  UPCYCLE_CHECK(grads.gate_FD.empty() || int64_t(grads.gate_FD.size()) == E, "MoE: gate grads need one per expert");
  UPCYCLE_CHECK(grads.up_FD.empty() || int64_t(grads.up_FD.size()) == E, "MoE: up grads need one per expert");
  UPCYCLE_CHECK(grads.down_DF.empty() || int64_t(grads.down_DF.size()) == E, "MoE: down grads need one per expert");
  if (dims_.shared_width > 0) shared_backward(dx, grads, dy, x, w);
  std::vector<float> dweight_A = experts_backward(dx, grads, dy, w);
  router_backward(dx, grads, dweight_A, x, w);
}

void MoeLayer::shared_backward(float* dx, MoeGrads& grads, const float* dy, const float* x, const MoeWeights& w) {
  const Saved& s = *saved_;
  const int64_t T = s.T, D = dims_.hidden, Fs = dims_.shared_width;
  const float* dy_shared = dy;
  std::vector<float> dy_TD;
  if (w.shared_expert_gate_1D) {
    // y = σ(z)·ys: dys = σ·dy, dσ = dy·ys, dz = dσ·σ(1−σ), z = x·w_gᵀ.
    dy_TD.assign(size_t(T * D), 0.0f);
    std::vector<float> dz_T(size_t(T), 0.0f);
    backend_.scatter_add_rows_backward(dy_TD.data(), dz_T.data(), dy, s.y_TD.data(), s.identity_T.data(),
                                       s.sigma_T.data(), T, T, D);
    for (int64_t t = 0; t < T; ++t) dz_T[size_t(t)] *= s.sigma_T[size_t(t)] * (1.0f - s.sigma_T[size_t(t)]);
    backend_.linear_backward(dx, grads.shared_expert_gate_1D, nullptr, dz_T.data(), x, w.shared_expert_gate_1D, T, D,
                             1);
    dy_shared = dy_TD.data();
  }
  std::vector<float> dh_TFs(size_t(T * Fs), 0.0f), dgate_TFs(dh_TFs.size(), 0.0f), dup_TFs(dh_TFs.size(), 0.0f);
  backend_.linear_backward(dh_TFs.data(), grads.shared_down_DFs, nullptr, dy_shared, s.h_TFs.data(),
                           w.shared_down_DFs, T, Fs, D);
  backend_.swiglu_backward(dgate_TFs.data(), dup_TFs.data(), dh_TFs.data(), s.gate_TFs.data(), s.up_TFs.data(),
                           T * Fs);
  backend_.linear_backward(dx, grads.shared_gate_FsD, nullptr, dgate_TFs.data(), x, w.shared_gate_FsD, T, D, Fs);
  backend_.linear_backward(dx, grads.shared_up_FsD, nullptr, dup_TFs.data(), x, w.shared_up_FsD, T, D, Fs);
}

std::vector<float> MoeLayer::experts_backward(float* dx, MoeGrads& grads, const float* dy, const MoeWeights& w) {
  const Saved& s = *saved_;
  const Routing& r = s.routing;
  const int64_t D = dims_.hidden, F = dims_.expert_width, E = options_.num_experts, A = r.kept();
  std::vector<float> dy_AD(size_t(A * D), 0.0f), dweight_A(size_t(A), 0.0f);
  backend_.scatter_add_rows_backward(dy_AD.data(), dweight_A.data(), dy, s.y_AD.data(), r.token.data(),
                                     r.weight.data(), A, s.T, D);
  std::vector<float> dh_AF(size_t(A * F), 0.0f), dgate_AF(dh_AF.size(), 0.0f), dup_AF(dh_AF.size(), 0.0f);
  backend_.grouped_linear_backward(dh_AF.data(), grad_ptrs(grads.down_DF), dy_AD.data(), s.h_AF.data(),
                                   w.down_DF.data(), r.offsets.data(), E, F, D);
  backend_.swiglu_backward(dgate_AF.data(), dup_AF.data(), dh_AF.data(), s.gate_AF.data(), s.up_AF.data(), A * F);
  std::vector<float> dx_AD(size_t(A * D), 0.0f);
  backend_.grouped_linear_backward(dx_AD.data(), grad_ptrs(grads.gate_FD), dgate_AF.data(), s.x_AD.data(),
                                   w.gate_FD.data(), r.offsets.data(), E, D, F);
  backend_.grouped_linear_backward(dx_AD.data(), grad_ptrs(grads.up_FD), dup_AF.data(), s.x_AD.data(),
                                   w.up_FD.data(), r.offsets.data(), E, D, F);
  if (dx) backend_.scatter_add_rows(dx, dx_AD.data(), r.token.data(), nullptr, A, s.T, D);
  return dweight_A;
}

void MoeLayer::router_backward(float* dx, MoeGrads& grads, const std::vector<float>& dweight_A, const float* x,
                               const MoeWeights& w) {
  const Saved& s = *saved_;
  const int64_t T = s.T, D = dims_.hidden, E = options_.num_experts;
  std::vector<double> dprobs_acc(size_t(T * E), 0.0);
  routing_weight_backward(dprobs_acc.data(), s.routing, dweight_A.data(), options_);
  const bool softmax = options_.scoring == RouterScoring::kSoftmax;  // sigmoid: no aux, no z loss
  if (softmax) aux_loss_backward(dprobs_acc.data(), T, E, s.routing.counts_E, options_.aux_loss_coef);
  for (size_t i = 0; i < s.dirichlet_dprobs_TE.size(); ++i)
    dprobs_acc[i] += options_.dirichlet_coef * s.dirichlet_dprobs_TE[i];
  std::vector<float> dprobs_TE(dprobs_acc.begin(), dprobs_acc.end()), dlogits_TE(size_t(T * E), 0.0f);
  if (softmax) {
    backend_.softmax_rows_backward(dlogits_TE.data(), dprobs_TE.data(), s.probs_TE.data(), T, E);
    z_loss_backward(dlogits_TE.data(), s.probs_TE.data(), s.lse_T, E, options_.z_loss_coef);
  } else {
    backend_.sigmoid_backward(dlogits_TE.data(), dprobs_TE.data(), s.probs_TE.data(), T * E);
  }
  if (!s.jittered) {
    backend_.linear_backward_f32(dx, grads.router_ED, nullptr, dlogits_TE.data(), x, w.router_ED, T, D, E);
    return;
  }
  // logits = (x⊙n)·W_rᵀ: the weight sees the noisy input, and ∂/∂x = (dlogits·W_r) ⊙ n.
  std::vector<float> dx_router_TD(size_t(T * D), 0.0f);
  backend_.linear_backward_f32(dx ? dx_router_TD.data() : nullptr, grads.router_ED, nullptr, dlogits_TE.data(),
                               s.x_router_TD.data(), w.router_ED, T, D, E);
  if (!dx) return;
  for (int64_t i = 0; i < T * D; ++i) dx[i] += dx_router_TD[size_t(i)] * s.noise_TD[size_t(i)];
}

MoeOptions moe_options_from_config(const ModelConfig& config) {
  MoeOptions o;
  o.num_experts = config.num_experts;
  o.top_k = config.num_experts_per_tok;
  o.topk_norm = config.topk_norm;
  o.jitter = config.router_jitter_noise;
  o.scoring = config.router_scoring;
  o.n_group = config.n_group;
  o.topk_group = config.topk_group;
  o.topk_scaling = config.routed_scaling_factor;
  return o;
}

MoeDims moe_dims_from_config(const ModelConfig& config) {
  return {config.hidden_size, config.moe_intermediate_size, config.shared_expert_intermediate_size};
}

}  // namespace upcycle::model
