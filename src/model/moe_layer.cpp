// MoE block forward/backward (contract in moe_layer.h): router → routing decision → gather → grouped
// gate/up linears → SwiGLU → grouped down linear → weighted scatter-add, plus the shared expert.
// Invariants: every piece of maths is a backend op (backend.h; the routing and loss ops in its "MoE
// routing and losses" section) and every saved tensor a backend Buffer; this file only sizes buffers,
// calls ops and reads back two small arrays per forward, each with one explicit download: the routing
// index (offsets, counts, dropped — the grouped linears need the offsets on the host) and the five
// loss/statistics scalars of MoeStats. Routing decisions are constants for differentiation.
// Non-goals: expert parallelism, token dropping by anything but capacity, activation recomputation.
#include "model/moe_layer.h"

#include <algorithm>

#include "core/error.h"
#include "model/dirichlet_prior.h"
#include "model/moe_routing.h"

namespace upcycle::model {

using backend::Buffer;

// Indices into Saved::scalars, the doubles the loss and statistics ops write (one download).
enum Scalar : size_t { kAux, kZ, kDirichlet, kEntropy, kTop1, kScalars };

// Activations and routing kept from forward for backward, in backend memory.
struct MoeLayer::Saved {
  int64_t T = 0;
  bool jittered = false;
  Buffer<float> noise_TD, x_router_TD;  // jitter only
  Buffer<float> probs_TE;
  Buffer<double> lse_T;                 // softmax scoring: the z loss's logsumexp
  Buffer<double> dirichlet_dprobs_TE;   // ∂L_dir/∂p, when dirichlet_coef ≠ 0
  DirichletPriorTable priors;           // op parameters (host), from the options
  backend::Backend::MoeRouteSpec spec;
  RoutingBuffers routing;
  RoutingIndex index;                   // host copy of routing.index
  Buffer<double> scalars;               // [kScalars]
  Buffer<float> x_AD, gate_AF, up_AF, h_AF, y_AD;        // routed experts
  Buffer<float> gate_TFs, up_TFs, h_TFs, y_TD, sigma_T;  // shared expert (sigma_T: its gate)
};

namespace {

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
  saved_->priors = dirichlet_prior_table(options_.dirichlet_alpha_E, options_.dirichlet_domain_alpha_DE);
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
  s.scalars.reset(backend_, kScalars);
  router_forward(x, w, phase, seed);
  dirichlet_forward(domain_T);
  s.index = download_index(s.routing, E);  // the one readback of the routing: offsets for the grouped ops

  backend_.fill_zero(y, size_t(T * D) * sizeof(float));
  experts_forward(y, x, w);
  if (dims_.shared_width > 0) shared_forward(y, x, w);
  fill_stats();
}

// Jitter → router logits → scores p → z loss, the routing decision, aux loss and statistics.
void MoeLayer::router_forward(const float* x, const MoeWeights& w, Phase phase, uint64_t seed) {
  Saved& s = *saved_;
  const int64_t T = s.T, D = dims_.hidden, E = options_.num_experts;
  s.jittered = phase == Phase::kTraining && options_.jitter > 0;
  const float* x_router = x;
  if (s.jittered) {  // multiplicative noise on the router input only
    s.noise_TD.resize_for_overwrite(backend_, size_t(T * D));
    s.x_router_TD.resize_for_overwrite(backend_, size_t(T * D));
    backend_.moe_jitter_forward(s.x_router_TD.data(), s.noise_TD.data(), x, T * D, seed, options_.jitter);
    x_router = s.x_router_TD.data();
  }
  Buffer<float> logits_TE(backend_, size_t(T * E));
  backend_.linear_forward_f32(logits_TE.data(), x_router, w.router_ED, nullptr, T, D, E);  // fp32: picks top-k
  s.probs_TE.resize_for_overwrite(backend_, size_t(T * E));
  const bool softmax = options_.scoring == RouterScoring::kSoftmax;
  double* scalars = s.scalars.data();
  if (softmax) {
    backend_.softmax_rows(s.probs_TE.data(), logits_TE.data(), T, E);
    s.lse_T.resize_for_overwrite(backend_, size_t(T));
    backend_.logsumexp_rows(s.lse_T.data(), logits_TE.data(), T, E);
    backend_.moe_z_loss(scalars + kZ, s.lse_T.data(), T);
  } else {  // sigmoid: no aux or z loss (header)
    backend_.sigmoid_forward(s.probs_TE.data(), logits_TE.data(), T * E);
  }
  s.spec = route_spec(options_, T);
  s.routing.reset(backend_, s.spec);
  const backend::Backend::MoeRouteOut out = s.routing.out(E);
  backend_.moe_route(out, s.probs_TE.data(), w.selection_bias_E, s.spec);  // the bias only picks experts
  if (softmax) backend_.moe_aux_loss(scalars + kAux, s.probs_TE.data(), out.counts, T, E);
  backend_.moe_router_stats(scalars + kEntropy, s.probs_TE.data(), T, E, !softmax);
}

void MoeLayer::dirichlet_forward(const int32_t* domain_T) {
  Saved& s = *saved_;
  const bool per_domain = !options_.dirichlet_domain_alpha_DE.empty();
  const bool computed = options_.has_dirichlet_prior() && (domain_T || !per_domain);  // else the loss stays 0
  const int64_t E = options_.num_experts;
  if (computed && options_.dirichlet_coef != 0)
    s.dirichlet_dprobs_TE.resize_for_overwrite(backend_, size_t(s.T * E));
  else
    s.dirichlet_dprobs_TE = {};  // backward adds no prior gradient
  if (!computed) return;
  backend_.dirichlet_prior_loss(s.scalars.data() + kDirichlet, s.dirichlet_dprobs_TE.data(), s.probs_TE.data(), s.T,
                                E, per_domain ? domain_T : nullptr, s.priors.prior_of_domain.data(),
                                s.priors.domains(), s.priors.alpha_PE.data(), s.priors.priors);
}

void MoeLayer::experts_forward(float* y, const float* x, const MoeWeights& w) {
  Saved& s = *saved_;
  const backend::Backend::MoeRouteOut r = s.routing.out(options_.num_experts);
  const int64_t D = dims_.hidden, F = dims_.expert_width, E = options_.num_experts, A = s.index.kept();
  const int64_t* offsets = s.index.offsets.data();
  // Sized for the spec's bound on A (fixed for a given T), so a varying kept count reuses the memory;
  // the ops read and write only the first A rows.
  const auto A_max = size_t(s.spec.max_assignments());
  s.x_AD.resize_for_overwrite(backend_, A_max * size_t(D));
  s.gate_AF.resize_for_overwrite(backend_, A_max * size_t(F));
  s.up_AF.resize_for_overwrite(backend_, A_max * size_t(F));
  s.h_AF.resize_for_overwrite(backend_, A_max * size_t(F));
  s.y_AD.resize_for_overwrite(backend_, A_max * size_t(D));
  backend_.gather_rows(s.x_AD.data(), x, r.token, A, s.T, D);
  backend_.grouped_linear_forward(s.gate_AF.data(), s.x_AD.data(), w.gate_FD.data(), offsets, E, D, F);
  backend_.grouped_linear_forward(s.up_AF.data(), s.x_AD.data(), w.up_FD.data(), offsets, E, D, F);
  backend_.swiglu_forward(s.h_AF.data(), s.gate_AF.data(), s.up_AF.data(), A * F);
  backend_.grouped_linear_forward(s.y_AD.data(), s.h_AF.data(), w.down_DF.data(), offsets, E, F, D);
  backend_.scatter_add_rows(y, s.y_AD.data(), r.token, r.weight, A, s.T, D);
}

void MoeLayer::shared_forward(float* y, const float* x, const MoeWeights& w) {
  Saved& s = *saved_;
  const int64_t T = s.T, D = dims_.hidden, Fs = dims_.shared_width;
  s.gate_TFs.resize_for_overwrite(backend_, size_t(T * Fs));
  s.up_TFs.resize_for_overwrite(backend_, size_t(T * Fs));
  s.h_TFs.resize_for_overwrite(backend_, size_t(T * Fs));
  s.y_TD.resize_for_overwrite(backend_, size_t(T * D));
  backend_.linear_forward(s.gate_TFs.data(), x, w.shared_gate_FsD, nullptr, T, D, Fs);
  backend_.linear_forward(s.up_TFs.data(), x, w.shared_up_FsD, nullptr, T, D, Fs);
  backend_.swiglu_forward(s.h_TFs.data(), s.gate_TFs.data(), s.up_TFs.data(), T * Fs);
  backend_.linear_forward(s.y_TD.data(), s.h_TFs.data(), w.shared_down_DFs, nullptr, T, Fs, D);
  if (!w.shared_expert_gate_1D) {
    s.sigma_T = {};
    backend_.axpy(y, s.y_TD.data(), 1.0f, T * D);
    return;
  }
  // Qwen2-MoE: y += sigmoid(x·w_gᵀ) · shared(x), per token.
  Buffer<float> z_T(backend_, size_t(T));
  s.sigma_T.resize_for_overwrite(backend_, size_t(T));
  backend_.linear_forward(z_T.data(), x, w.shared_expert_gate_1D, nullptr, T, D, 1);
  backend_.sigmoid_forward(s.sigma_T.data(), z_T.data(), T);
  backend_.moe_shared_gate_forward(y, s.y_TD.data(), s.sigma_T.data(), T, D);
}

void MoeLayer::fill_stats() {
  const Saved& s = *saved_;
  const int64_t E = options_.num_experts;
  stats_.tokens_per_expert.resize(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e)
    stats_.tokens_per_expert[size_t(e)] = s.index.offsets[size_t(e + 1)] - s.index.offsets[size_t(e)];
  stats_.assignments = s.spec.max_assignments();
  stats_.dropped = s.index.dropped;
  const std::vector<double> scalars = s.scalars.to_host();  // the forward's second and last readback
  stats_.aux_loss = scalars[kAux];
  stats_.z_loss = scalars[kZ];
  stats_.dirichlet_loss = scalars[kDirichlet];
  stats_.router_entropy = scalars[kEntropy];
  stats_.top1_probability = scalars[kTop1];
}

void MoeLayer::backward(float* dx, MoeGrads& grads, const float* dy, const float* x, const MoeWeights& w) {
  const int64_t E = options_.num_experts;
  UPCYCLE_CHECK(saved_->index.offsets.size() == size_t(E + 1), "MoE: backward without a forward");
  UPCYCLE_CHECK(grads.gate_FD.empty() || int64_t(grads.gate_FD.size()) == E, "MoE: gate grads need one per expert");
  UPCYCLE_CHECK(grads.up_FD.empty() || int64_t(grads.up_FD.size()) == E, "MoE: up grads need one per expert");
  UPCYCLE_CHECK(grads.down_DF.empty() || int64_t(grads.down_DF.size()) == E, "MoE: down grads need one per expert");
  if (dims_.shared_width > 0) shared_backward(dx, grads, dy, x, w);
  const Buffer<float> dweight_A = experts_backward(dx, grads, dy, w);
  router_backward(dx, grads, dweight_A, x, w);
}

void MoeLayer::shared_backward(float* dx, MoeGrads& grads, const float* dy, const float* x, const MoeWeights& w) {
  const Saved& s = *saved_;
  const int64_t T = s.T, D = dims_.hidden, Fs = dims_.shared_width;
  const float* dy_shared = dy;
  Buffer<float> dys_TD;
  if (w.shared_expert_gate_1D) {
    // y = σ(z)·ys: dys = σ·dy, dz = (dy·ys)·σ(1−σ), z = x·w_gᵀ.
    dys_TD.reset(backend_, size_t(T * D));
    Buffer<float> dz_T(backend_, size_t(T));
    backend_.moe_shared_gate_backward(dys_TD.data(), dz_T.data(), dy, s.y_TD.data(), s.sigma_T.data(), T, D);
    backend_.linear_backward(dx, grads.shared_expert_gate_1D, nullptr, dz_T.data(), x, w.shared_expert_gate_1D, T, D,
                             1);
    dy_shared = dys_TD.data();
  }
  Buffer<float> dh_TFs(backend_, size_t(T * Fs)), dgate_TFs(backend_, size_t(T * Fs)), dup_TFs(backend_, size_t(T * Fs));
  backend_.linear_backward(dh_TFs.data(), grads.shared_down_DFs, nullptr, dy_shared, s.h_TFs.data(),
                           w.shared_down_DFs, T, Fs, D);
  backend_.swiglu_backward(dgate_TFs.data(), dup_TFs.data(), dh_TFs.data(), s.gate_TFs.data(), s.up_TFs.data(),
                           T * Fs);
  backend_.linear_backward(dx, grads.shared_gate_FsD, nullptr, dgate_TFs.data(), x, w.shared_gate_FsD, T, D, Fs);
  backend_.linear_backward(dx, grads.shared_up_FsD, nullptr, dup_TFs.data(), x, w.shared_up_FsD, T, D, Fs);
}

Buffer<float> MoeLayer::experts_backward(float* dx, MoeGrads& grads, const float* dy, const MoeWeights& w) {
  Saved& s = *saved_;
  const backend::Backend::MoeRouteOut r = s.routing.out(options_.num_experts);
  const int64_t D = dims_.hidden, F = dims_.expert_width, E = options_.num_experts, A = s.index.kept();
  const int64_t* offsets = s.index.offsets.data();
  Buffer<float> dy_AD(backend_, size_t(A * D)), dweight_A(backend_, size_t(A));
  backend_.scatter_add_rows_backward(dy_AD.data(), dweight_A.data(), dy, s.y_AD.data(), r.token, r.weight, A, s.T, D);
  Buffer<float> dh_AF(backend_, size_t(A * F)), dgate_AF(backend_, size_t(A * F)), dup_AF(backend_, size_t(A * F));
  backend_.grouped_linear_backward(dh_AF.data(), grad_ptrs(grads.down_DF), dy_AD.data(), s.h_AF.data(),
                                   w.down_DF.data(), offsets, E, F, D);
  backend_.swiglu_backward(dgate_AF.data(), dup_AF.data(), dh_AF.data(), s.gate_AF.data(), s.up_AF.data(), A * F);
  Buffer<float> dx_AD(backend_, size_t(A * D));
  backend_.grouped_linear_backward(dx_AD.data(), grad_ptrs(grads.gate_FD), dgate_AF.data(), s.x_AD.data(),
                                   w.gate_FD.data(), offsets, E, D, F);
  backend_.grouped_linear_backward(dx_AD.data(), grad_ptrs(grads.up_FD), dup_AF.data(), s.x_AD.data(),
                                   w.up_FD.data(), offsets, E, D, F);
  if (dx) backend_.scatter_add_rows(dx, dx_AD.data(), r.token, nullptr, A, s.T, D);
  return dweight_A;
}

void MoeLayer::router_backward(float* dx, MoeGrads& grads, const Buffer<float>& dweight_A, const float* x,
                               const MoeWeights& w) {
  Saved& s = *saved_;
  const int64_t T = s.T, D = dims_.hidden, E = options_.num_experts;
  const bool softmax = options_.scoring == RouterScoring::kSoftmax;  // sigmoid: no aux, no z loss
  Buffer<float> dprobs_TE(backend_, size_t(T * E)), dlogits_TE(backend_, size_t(T * E));
  backend_.moe_route_backward(dprobs_TE.data(), dweight_A.data(), s.routing.out(E), s.index.kept(), s.spec,
                              softmax ? options_.aux_loss_coef : 0.0, s.dirichlet_dprobs_TE.data(),
                              options_.dirichlet_coef);
  if (softmax) {
    backend_.softmax_rows_backward(dlogits_TE.data(), dprobs_TE.data(), s.probs_TE.data(), T, E);
    backend_.moe_z_loss_backward(dlogits_TE.data(), s.probs_TE.data(), s.lse_T.data(), T, E, options_.z_loss_coef);
  } else {
    backend_.sigmoid_backward(dlogits_TE.data(), dprobs_TE.data(), s.probs_TE.data(), T * E);
  }
  if (!s.jittered) {
    backend_.linear_backward_f32(dx, grads.router_ED, nullptr, dlogits_TE.data(), x, w.router_ED, T, D, E);
    return;
  }
  // logits = (x⊙n)·W_rᵀ: the weight sees the noisy input, and ∂/∂x = (dlogits·W_r) ⊙ n.
  Buffer<float> dx_router_TD(backend_, dx ? size_t(T * D) : 0);
  backend_.linear_backward_f32(dx ? dx_router_TD.data() : nullptr, grads.router_ED, nullptr, dlogits_TE.data(),
                               s.x_router_TD.data(), w.router_ED, T, D, E);
  if (dx) backend_.moe_jitter_backward(dx, dx_router_TD.data(), s.noise_TD.data(), T * D);
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
