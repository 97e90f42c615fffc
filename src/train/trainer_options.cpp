// Option parsing helpers, validation and routing resolution for the trainer (see trainer_options.h).
#include "train/trainer_options.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>

#include "core/error.h"
#include "model/dirichlet_prior.h"
#include "train/lr_schedule.h"

namespace upcycle::train {
namespace {

std::string num(double v) {
  std::ostringstream ss;
  ss << v;
  return ss.str();
}

void require(bool ok, const std::string& what) {
  if (!ok) throw Error(what);
}

std::vector<int64_t> parse_steps_list(const char* name, const char* text) {
  std::vector<int64_t> steps;
  std::string s(text);
  std::replace(s.begin(), s.end(), ',', ' ');
  std::istringstream in(s);
  for (std::string word; in >> word;) {
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), v);
    if (ec != std::errc() || ptr != word.data() + word.size() || v < 1)
      throw Error("expected step numbers ≥ 1 separated by commas, got '" + std::string(text) + "'", name);
    steps.push_back(v);
  }
  return steps;
}

// "DOMAIN=…" entries select the per-domain form; it cannot be mixed with the plain one.
bool is_domain_prior(const std::vector<std::string>& prior) {
  const auto named = [](const std::string& p) { return p.find('=') != std::string::npos; };
  const bool any = std::any_of(prior.begin(), prior.end(), named);
  if (any && !std::all_of(prior.begin(), prior.end(), named))
    throw Error("--dirichlet-prior: give one α|α1,…,αE for every token, or DOMAIN=α1,…,αE for each domain, not both");
  if (!any && prior.size() > 1)
    throw Error("--dirichlet-prior: " + std::to_string(prior.size()) +
                " priors without a domain; give one for every token, or DOMAIN=α1,…,αE for each domain");
  return any;
}

}  // namespace

bool resume_mutable(std::string_view option) {
  return std::find(kResumeMutableOptions.begin(), kResumeMutableOptions.end(), option) != kResumeMutableOptions.end();
}

TestHooks TestHooks::from_environment() {
  TestHooks hooks;
  if (const char* v = std::getenv("UPCYCLE_TEST_NAN_STEPS")) hooks.nan_steps = parse_steps_list("UPCYCLE_TEST_NAN_STEPS", v);
  if (const char* v = std::getenv("UPCYCLE_TEST_CHECKPOINT_PAUSE")) {
    auto steps = parse_steps_list("UPCYCLE_TEST_CHECKPOINT_PAUSE", v);
    if (steps.size() != 1) throw Error("expected one step number", "UPCYCLE_TEST_CHECKPOINT_PAUSE");
    hooks.checkpoint_pause_step = steps[0];
  }
  return hooks;
}

DataSource parse_data_source(const std::string& spec) {
  DataSource source{spec, 1.0};
  if (auto colon = spec.rfind(':'); colon != std::string::npos && colon + 1 < spec.size()) {
    const std::string tail = spec.substr(colon + 1);
    double w = 0;
    auto [ptr, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), w);
    if (ec == std::errc() && ptr == tail.data() + tail.size()) {
      if (!(w > 0) || !std::isfinite(w))
        throw Error("--data " + spec + ": the mixing weight must be a positive number (got " + tail + ")");
      source = {spec.substr(0, colon), w};
    }
  }
  if (source.dir.empty()) throw Error("--data " + spec + ": empty directory name");
  return source;
}

void validate_options(const TrainOptions& o) {
  require(!o.out.empty(), "missing --out (the run directory)");
  require(o.steps >= 1, "--steps must be at least 1 (got " + std::to_string(o.steps) + ")");
  require(o.micro_batch >= 1, "--micro-batch must be at least 1 (got " + std::to_string(o.micro_batch) + ")");
  require(o.seq_len >= 1, "--seq-len must be at least 1 (got " + std::to_string(o.seq_len) + ")");
  require(o.grad_accum >= 1, "--grad-accum must be at least 1 (got " + std::to_string(o.grad_accum) + ")");
  require(o.lr > 0 && std::isfinite(o.lr), "--lr must be a positive number (got " + num(o.lr) + ")");
  require(o.min_lr >= 0 && o.min_lr <= o.lr, "--min-lr must lie in [0, --lr] (got " + num(o.min_lr) + ")");
  require(o.warmup >= 0, "--warmup must be ≥ 0 (got " + std::to_string(o.warmup) + ")");
  require(o.warmup_start_lr >= 0, "--warmup-start-lr must be ≥ 0 (got " + num(o.warmup_start_lr) + ")");
  require(o.decay_fraction >= 0 && o.decay_fraction <= 1,
          "--decay-fraction must lie in [0, 1] (got " + num(o.decay_fraction) + ")");
  require(o.schedule_offset >= 0, "--schedule-offset must be ≥ 0 (got " + std::to_string(o.schedule_offset) + ")");
  require(o.timescale >= 0, "--timescale must be ≥ 0 (got " + std::to_string(o.timescale) + ")");
  schedule_kind_from_name(o.schedule);
  require(o.beta1 >= 0 && o.beta1 < 1, "--beta1 must lie in [0, 1) (got " + num(o.beta1) + ")");
  require(o.beta2 >= 0 && o.beta2 < 1, "--beta2 must lie in [0, 1) (got " + num(o.beta2) + ")");
  require(o.eps > 0, "--eps must be positive (got " + num(o.eps) + ")");
  require(o.weight_decay >= 0, "--weight-decay must be ≥ 0 (got " + num(o.weight_decay) + ")");
  require(o.clip >= 0, "--clip must be ≥ 0 (0 = no clipping; got " + num(o.clip) + ")");
  if (o.init_optimizer == "from-dense")
    require(!o.dense_optimizer.empty(), "--init-optimizer from-dense needs --dense-optimizer RUN_OR_CKPT_DIR");
  else
    require(o.dense_optimizer.empty(), "--dense-optimizer is only used with --init-optimizer from-dense");
  require(o.capacity_factor >= 0, "--capacity-factor must be ≥ 0 (got " + num(o.capacity_factor) + ")");
  require(o.top_k >= 0, "--top-k must be ≥ 0 (got " + std::to_string(o.top_k) + ")");
  require(o.z_loss_coef >= 0, "--z-loss-coef must be ≥ 0 (got " + num(o.z_loss_coef) + ")");
  require(o.expert_bias_rate >= 0, "--expert-bias-rate must be ≥ 0 (got " + num(o.expert_bias_rate) + ")");
  require(o.dirichlet_coef >= 0 && std::isfinite(o.dirichlet_coef),
          "--dirichlet-coef must be ≥ 0 (got " + num(o.dirichlet_coef) + ")");
  require(o.dirichlet_steps >= 0, "--dirichlet-steps must be ≥ 0 (got " + std::to_string(o.dirichlet_steps) + ")");
  require(o.dirichlet_steps == 0 || o.dirichlet_coef > 0, "--dirichlet-steps needs --dirichlet-coef > 0");
  require(o.save_every >= 1, "--save-every must be at least 1 (got " + std::to_string(o.save_every) + ")");
  require(o.keep >= 1, "--keep must be at least 1 (got " + std::to_string(o.keep) + ")");
  require(o.eval_every >= 0, "--eval-every must be ≥ 0 (got " + std::to_string(o.eval_every) + ")");
  require(o.eval_tokens >= 1, "--eval-tokens must be at least 1 (got " + std::to_string(o.eval_tokens) + ")");
  require(o.log_every >= 1, "--log-every must be at least 1 (got " + std::to_string(o.log_every) + ")");
  require(o.max_nonfinite >= 1, "--max-nonfinite must be at least 1 (got " + std::to_string(o.max_nonfinite) + ")");
  require(o.stop_after >= 0, "--stop-after must be ≥ 0 (got " + std::to_string(o.stop_after) + ")");
  require(o.dist_timeout >= 0 && std::isfinite(o.dist_timeout),
          "--dist-timeout must be ≥ 0 seconds (got " + num(o.dist_timeout) + "; 0 waits forever)");
  require(o.threads >= 0, "--threads must be ≥ 0 (got " + std::to_string(o.threads) + ")");
  if (!o.resume) {
    require(!o.model.empty(), "missing --model (the checkpoint to train)");
    require(!o.data.empty(), "missing --data (a dataset directory from `upcycle data tokenize`)");
  }
  for (const auto& d : o.data) parse_data_source(d);
}

model::MoeOptions resolve_moe_options(const TrainOptions& o, const ModelConfig& config) {
  if (!config.is_moe()) {
    const char* given = o.routing != "token-choice" ? "--routing"
                        : o.top_k != 0              ? "--top-k"
                        : o.capacity_factor != 0    ? "--capacity-factor"
                        : o.aux_loss_coef >= 0      ? "--aux-loss-coef"
                        : o.z_loss_coef != 0        ? "--z-loss-coef"
                        : o.jitter >= 0             ? "--jitter"
                        : o.expert_bias_rate != 0   ? "--expert-bias-rate"
                        : o.dirichlet_coef != 0     ? "--dirichlet-coef"
                        : !o.dirichlet_prior.empty() ? "--dirichlet-prior"
                                                    : nullptr;
    if (given) throw Error(std::string(given) + " applies to MoE models only; the model is dense", o.model);
    return {};
  }
  model::MoeOptions m = model::moe_options_from_config(config);
  m.mode = o.routing == "expert-choice" ? model::RoutingMode::kExpertChoice : model::RoutingMode::kTokenChoice;
  if (o.top_k > 0) {
    if (o.top_k > m.num_experts)
      throw Error("--top-k " + std::to_string(o.top_k) + " exceeds the model's " + std::to_string(m.num_experts) +
                  " experts");
    m.top_k = o.top_k;
  }
  m.capacity_factor = o.capacity_factor;
  if (m.mode == model::RoutingMode::kExpertChoice && m.capacity_factor <= 0)
    throw Error("--routing expert-choice needs --capacity-factor > 0 (each expert takes ceil(T·cf/E) tokens)");
  if (m.mode == model::RoutingMode::kExpertChoice && o.expert_bias_rate > 0)
    throw Error("--expert-bias-rate applies to token-choice routing only (expert choice ignores the bias)");
  if (m.scoring == RouterScoring::kSigmoid) {  // dots1: DeepSeek-V3 balances by the bias alone
    if (m.mode == model::RoutingMode::kExpertChoice)
      throw Error("--routing expert-choice needs softmax router scores; this model scores with a sigmoid (dots1)");
    if (o.aux_loss_coef > 0 || o.z_loss_coef > 0)
      throw Error(std::string(o.aux_loss_coef > 0 ? "--aux-loss-coef" : "--z-loss-coef") +
                  " is not implemented for sigmoid router scores (dots1): balance with --expert-bias-rate");
    if (m.top_k > m.topk_group * (m.num_experts / m.n_group))
      throw Error("--top-k " + std::to_string(m.top_k) + " exceeds the " +
                  std::to_string(m.topk_group * (m.num_experts / m.n_group)) + " experts of the model's topk_group groups");
  }
  if (o.jitter >= 0) m.jitter = o.jitter;
  // HF's Mixtral/Qwen load-balancing loss equals top-k × ours (moe_layer.h), so the same pull on the
  // router needs our coefficient = top-k × the config's router_aux_loss_coef.
  m.aux_loss_coef = o.aux_loss_coef >= 0 ? o.aux_loss_coef : config.router_aux_loss_coef * double(m.top_k);
  m.z_loss_coef = o.z_loss_coef;
  if (o.dirichlet_coef > 0 || !o.dirichlet_prior.empty()) {
    if (m.num_experts < 2) throw Error("--dirichlet-prior needs at least 2 experts", o.model);
    // The prior's Beta marginals describe softmax probabilities on the simplex; sigmoid scores are not.
    if (m.scoring == RouterScoring::kSigmoid)
      throw Error("--dirichlet-prior needs softmax router scores; this model scores with a sigmoid (dots1)", o.model);
    if (!is_domain_prior(o.dirichlet_prior))  // the per-domain form needs the mixture's domains
      m.dirichlet_alpha_E = model::parse_dirichlet_prior(o.dirichlet_prior.empty() ? "1" : o.dirichlet_prior[0],
                                                         m.num_experts, "--dirichlet-prior");
    m.dirichlet_coef = o.dirichlet_coef;
  }
  return m;
}

std::vector<std::vector<double>> resolve_domain_dirichlet_prior(const TrainOptions& o, int64_t num_experts,
                                                                const std::vector<std::string>& domains) {
  if (!is_domain_prior(o.dirichlet_prior)) return {};
  std::string listed;
  for (const auto& d : domains) listed += (listed.empty() ? "" : ", ") + d;
  std::vector<std::vector<double>> alpha_DE(domains.size());
  std::set<std::string> named;
  for (const auto& entry : o.dirichlet_prior) {
    const size_t eq = entry.find('=');
    const std::string name = entry.substr(0, eq);
    const std::vector<double> alpha =
        model::parse_dirichlet_prior(entry.substr(eq + 1), num_experts, "--dirichlet-prior " + name + "=");
    if (std::find(domains.begin(), domains.end(), name) == domains.end())
      throw Error("--dirichlet-prior " + entry + ": no domain '" + name + "' in the --data mixture (its domains: " +
                  listed + ")");
    if (!named.insert(name).second) throw Error("--dirichlet-prior: domain '" + name + "' given twice");
    for (size_t d = 0; d < domains.size(); ++d)  // several --data datasets may share a domain name
      if (domains[d] == name) alpha_DE[d] = alpha;
  }
  for (size_t d = 0; d < domains.size(); ++d)
    if (alpha_DE[d].empty())
      throw Error("--dirichlet-prior: no prior for domain '" + domains[d] + "' of the --data mixture (its domains: " +
                  listed + "); give DOMAIN=α1,…,αE for each");
  return alpha_DE;
}

FlopsPerToken run_flops_per_token(const TrainOptions& options, const ModelConfig& config) {
  const model::MoeOptions moe = resolve_moe_options(options, config);
  const double experts_per_token =
      moe.mode == model::RoutingMode::kExpertChoice ? moe.capacity_factor : double(moe.top_k);
  return flops_per_token(config, options.seq_len, experts_per_token);
}

}  // namespace upcycle::train
