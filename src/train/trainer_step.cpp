// One optimizer step (see trainer.h for the sequence). Gradients of the grad_accum micro-batches sum
// in the model's gradient store; the 1/grad_accum average and the clipping factor are applied in one
// pass. The gradient norm reported (and clipped to) is that of the averaged gradient. The maths runs
// in backend ops (l2_norm: the step's one gradient readback, scale, adamw_step, expert_bias_update);
// this file decides what to call. Data parallel (train/data_parallel.h): each rank runs its share of
// the global batch, then gradients, loss and routing sums are summed over the ranks before the norm.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "core/rng.h"
#include "io/weight_table.h"
#include "train/data_parallel.h"
#include "train/expert_bias.h"
#include "train/trainer.h"

namespace upcycle::train {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// Counter (step·micro-batches per step + global micro-batch) of the run's "train_jitter" stream: fresh
// noise per micro-batch, the same whether the step runs straight through or after a resume, and the
// same for N ranks × A micro-batches as for one process × N·A.
uint64_t Trainer::jitter_seed(int64_t step, int64_t global_micro) const {
  const int64_t per_step = options_.grad_accum * group_.size();
  return CounterRng(options_.seed, "train_jitter").bits(uint64_t(step * per_step + global_micro));
}

void Trainer::accumulate_moe_stats(StepResult& r) const {
  size_t next = 0;
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    const model::MoeStats* s = model_->moe_stats(l);
    if (!s) continue;
    if (next == r.moe.size()) {
      r.moe.push_back({.layer = l});
      r.moe.back().tokens_per_expert.assign(s->tokens_per_expert.size(), 0);
    }
    LayerStepStats& sum = r.moe[next++];
    for (size_t e = 0; e < s->tokens_per_expert.size(); ++e) sum.tokens_per_expert[e] += s->tokens_per_expert[e];
    sum.assignments += s->assignments;
    sum.dropped += s->dropped;
    sum.router_entropy += s->router_entropy;
    sum.top1_probability += s->top1_probability;
    sum.aux_loss += s->aux_loss;
    sum.z_loss += s->z_loss;
    sum.dirichlet_loss += s->dirichlet_loss;
  }
}

void Trainer::update_expert_bias(const StepResult& r) {
  for (const auto& layer : r.moe) {
    // The selection bias is a backend buffer of the model; the op updates it where it lives.
    backend::Buffer<float>& bias = model_->expert_bias(layer.layer);
    train::update_expert_bias(*backend_, {bias.data(), bias.size()}, layer.tokens_per_expert, options_.expert_bias_rate);
    // dots1 holds the bias as a weight (e_score_correction_bias): checkpoints and evaluation see it.
    if (float* weight = model_->params().find(router_bias_name(layer.layer)))
      backend_->copy(weight, bias.data(), bias.size() * sizeof(float));
  }
}

// --dirichlet-steps N: steps N+1… train without the prior's gradient (the loss is still measured). The
// switch depends on the step number alone, so a resumed run switches at the same step.
void Trainer::end_dirichlet_shaping_if_due() {
  if (!dirichlet_shaping_ || options_.dirichlet_steps == 0 || state_.step < options_.dirichlet_steps) return;
  model::MoeOptions measured_only = moe_options_;
  measured_only.dirichlet_coef = 0.0;
  model_->set_moe_options(measured_only);
  dirichlet_shaping_ = false;
}

StepResult Trainer::step() {
  const auto t0 = std::chrono::steady_clock::now();
  end_dirichlet_shaping_if_due();
  const int64_t B = options_.micro_batch, L = options_.seq_len, A = options_.grad_accum;
  const int64_t N = group_.size(), rank = group_.rank();
  StepResult r;
  r.step = state_.step + 1;
  model_->zero_grads();
  double loss_sum = 0;
  for (int64_t m = 0; m < A; ++m) {
    const auto d0 = std::chrono::steady_clock::now();
    batcher_->skip(rank * B);  // global micro-batch m·N + rank of the one stream
    batcher_->next(B, ids_BL_.data(), targets_BL_.data(), domain_B_.data());
    batcher_->skip((N - 1 - rank) * B);
    r.data_seconds += seconds_since(d0);
    model_->set_phase(model::Phase::kTraining, jitter_seed(state_.step, m * N + rank));
    if (!moe_options_.dirichlet_domain_alpha_DE.empty()) {  // per-domain prior: each token's domain
      std::vector<int32_t> domain_T(size_t(B * L));
      for (int64_t b = 0; b < B; ++b) std::fill_n(domain_T.begin() + b * L, L, domain_B_[size_t(b)]);
      model_->set_token_domains(domain_T);
    }
    const auto e0 = std::chrono::steady_clock::now();
    model_->forward(ids_BL_.data(), B, L);
    loss_sum += model_->loss(targets_BL_.data());
    r.engine_seconds += seconds_since(e0);
    accumulate_moe_stats(r);
    const auto e1 = std::chrono::steady_clock::now();
    model_->backward();
    r.engine_seconds += seconds_since(e1);
  }
  float* grads = model_->grads().data();
  const size_t n = model_->grads().size();
  const auto c0 = std::chrono::steady_clock::now();
  group_.set_activity("the gradient reduction of step " + std::to_string(r.step));
  all_reduce_backend_sum(*backend_, group_, grads, n);  // every rank: Σ over the N·A micro-batches
  all_reduce_step_sums(group_, loss_sum, r.moe);
  r.comm_seconds = seconds_since(c0);
  const double micro_batches = double(A * N);
  r.loss = loss_sum / micro_batches;
  for (auto& layer : r.moe) {  // micro-batch sums → means (equal token counts per micro-batch)
    layer.router_entropy /= micro_batches;
    layer.top1_probability /= micro_batches;
    layer.aux_loss /= micro_batches;
    layer.z_loss /= micro_batches;
    layer.dirichlet_loss /= micro_batches;
    r.aux += layer.aux_loss / double(r.moe.size());
    r.z += layer.z_loss / double(r.moe.size());
    r.dirichlet += layer.dirichlet_loss / double(r.moe.size());
  }

  if (std::find(hooks_.nan_steps.begin(), hooks_.nan_steps.end(), r.step) != hooks_.nan_steps.end()) {
    const float nan = std::numeric_limits<float>::quiet_NaN();  // test hook: a poisoned gradient
    backend_->upload(grads, &nan, sizeof nan);
  }
  r.grad_norm = backend_->l2_norm(grads, int64_t(n)) / micro_batches;
  r.lr = schedule_.lr(state_.step);
  r.skipped = !std::isfinite(r.loss) || !std::isfinite(r.grad_norm);
  if (r.skipped) {
    ++state_.skipped_steps;
    ++state_.consecutive_nonfinite;
  } else {
    const double factor = clip_factor(r.grad_norm, options_.clip) / micro_batches;
    if (factor != 1.0) backend_->scale(grads, factor, int64_t(n));
    const auto e0 = std::chrono::steady_clock::now();
    optimizer_->step(model_->params().data(), grads, r.lr);
    r.engine_seconds += seconds_since(e0);
    if (options_.expert_bias_rate > 0) update_expert_bias(r);
    state_.consecutive_nonfinite = 0;
  }
  const int64_t tokens = tokens_per_step();
  ++state_.step;
  state_.tokens += tokens;
  state_.flops += flops_.train * double(tokens);
  r.seconds = seconds_since(t0);
  return r;
}

}  // namespace upcycle::train
