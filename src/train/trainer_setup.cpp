// Trainer construction: everything that can be checked is checked before the run directory is
// touched (options, model config, routing, every token id of every dataset), then the model, the
// optimizer and — on --resume — the latest checkpoint's state are loaded (see trainer.h).
#include <algorithm>
#include <cstdio>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "data/token_dataset.h"
#include "io/checkpoint.h"
#include "io/weight_table.h"
#include "model/load_model.h"
#include "train/optimizer_state.h"
#include "train/trainer.h"

namespace upcycle::train {
namespace fs = std::filesystem;

namespace {

// The model directory of a dense run or checkpoint given to --dense-optimizer, resolved to its
// optimizer.safetensors (a run directory means its latest checkpoint).
fs::path dense_optimizer_file(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir / kOptimizerFile, ec)) return dir / kOptimizerFile;
  if (fs::is_directory(RunPaths{dir}.checkpoints(), ec))
    if (auto latest = find_latest_checkpoint(RunPaths{dir}.checkpoints())) return *latest / kOptimizerFile;
  throw Error("--dense-optimizer: no optimizer.safetensors here, nor a run directory with a checkpoint", dir.string());
}

}  // namespace

Trainer::Trainer(TrainOptions options, Json options_json, RunMode mode, TestHooks hooks, dist::ProcessGroup& group)
    : options_(std::move(options)),
      options_json_(std::move(options_json)),
      mode_(mode),
      hooks_(std::move(hooks)),
      group_(group) {
  // A resume reads the run directory that rank 0 tidies (leftover staging directories) and rewrites
  // (config.json): the other ranks start reading once rank 0 is done.
  const bool ordered = mode_ == RunMode::kResume && group_.size() > 1;
  group_.set_activity("the resume (rank 0 loads the checkpoint first)");
  if (ordered && !is_writer()) group_.barrier();
  construct();
  if (ordered && is_writer()) group_.barrier();
}

void Trainer::construct() {
  validate_options(options_);
  run_.root = options_.out;
  std::optional<fs::path> resume_from;
  Json previous_record;
  if (mode_ == RunMode::kResume) {
    previous_record = read_run_record(run_.root);
    resume_from = find_latest_checkpoint(run_.checkpoints());
  }
  const fs::path model_dir = resume_from ? *resume_from : fs::path(options_.model);
  config_ = read_model_config(model_dir);
  moe_options_ = resolve_moe_options(options_, config_);
  schedule_ = {.kind = schedule_kind_from_name(options_.schedule),
               .peak_lr = options_.lr,
               .min_lr = options_.min_lr,
               .warmup_steps = options_.warmup,
               .warmup_start_lr = options_.warmup_start_lr,
               .total_steps = options_.steps,
               .decay_fraction = options_.decay_fraction,
               .timescale = options_.timescale,
               .step_offset = options_.schedule_offset};
  schedule_.validate();
  flops_ = run_flops_per_token(options_, config_);
  open_data(config_);
  if (config_.is_moe()) {  // a per-domain Dirichlet prior names the mixture's domains
    std::vector<std::string> domains;
    for (const auto& ds : batcher_->domains()) domains.push_back(ds.domain);
    moe_options_.dirichlet_domain_alpha_DE =
        resolve_domain_dirichlet_prior(options_, moe_options_.num_experts, domains);
  }

  backend_ = backend::make_backend(backend::backend_kind_from_name(options_.backend));
  load_model(model_dir);
  optimizer_.emplace(*backend_, model_->params().specs(), AdamWConfig{options_.beta1, options_.beta2, options_.eps,
                                                            options_.weight_decay});
  side_files_from_ = model_dir;
  if (resume_from) {
    restore(*resume_from);
    last_checkpoint_ = *resume_from;
  } else {
    init_optimizer();  // a fresh run, or a resumed one that stopped before its first checkpoint
  }
  if (resume_from && state_.world_size != group_.size() && is_writer())
    std::printf("resuming with %d processes, the checkpoint was written by %lld: the data continues where it "
                "stopped, the global batch is now %lld tokens a step\n",
                group_.size(), static_cast<long long>(state_.world_size), static_cast<long long>(tokens_per_step()));
  state_.world_size = group_.size();
  state_.options_digest = options_digest();
  if (!is_writer()) return;  // rank 0 alone writes the run directory
  // Everything that can fail on the inputs has run: only now is the run directory touched.
  if (mode_ == RunMode::kFresh) {
    std::error_code ec;
    const fs::path model_abs = fs::weakly_canonical(options_.model, ec), run_abs = fs::weakly_canonical(run_.root, ec);
    const auto r = std::mismatch(run_abs.begin(), run_abs.end(), model_abs.begin(), model_abs.end()).first;
    if (options_.force && r == run_abs.end())
      throw Error("--force would delete --model, which lies inside the run directory; copy it elsewhere first",
                  options_.model);
    prepare_fresh_run_dir(run_, options_.force ? StartOver::kYes : StartOver::kNo);
  }
  Json record = run_record();
  if (previous_record.contains("model")) record["model"] = previous_record["model"];  // the source, not the checkpoint
  write_json_atomically(run_.config(), record);
  metrics_ = std::make_unique<MetricsLog>(run_.metrics(), mode_ == RunMode::kFresh ? -1 : state_.step);
  tensorboard_ = std::make_unique<TensorBoardWriter>(run_.tensorboard(), mode_ == RunMode::kFresh ? -1 : state_.step);
}

Trainer::~Trainer() = default;

void Trainer::open_data(const ModelConfig& config) {
  const uint64_t vocab = uint64_t(config.vocab_size);
  std::vector<data::TokenDataset> domains;
  std::vector<double> weights;
  for (const auto& spec : options_.data) {
    DataSource source = parse_data_source(spec);
    data::TokenDataset ds = data::open_dataset(source.dir, data::Split::kTrain);
    for (const auto& shard : ds.shards) shard.check_ids(vocab);  // ids ≥ vocab: an Error before any step
    sources_.push_back(source);
    weights.push_back(source.weight);
    domains.push_back(std::move(ds));
  }
  batcher_.emplace(std::move(domains), std::move(weights), options_.seq_len, options_.seed);

  std::set<std::string> names;
  const int64_t window = options_.seq_len + 1;
  for (const auto& dir : options_.val) {
    data::TokenDataset ds = data::open_dataset(dir, data::Split::kVal);
    for (const auto& shard : ds.shards) shard.check_ids(vocab);
    if (!names.insert(ds.domain).second)
      throw Error("two --val datasets share the domain name '" + ds.domain + "'", (fs::path(dir) / "dataset.json").string());
    const int64_t available = int64_t(ds.tokens) / window;
    if (available == 0)
      throw Error("val split has " + std::to_string(ds.tokens) + " tokens: fewer than one window of --seq-len+1 = " +
                      std::to_string(window),
                  (fs::path(dir) / "dataset.json").string());
    const int64_t windows = std::min(available, std::max<int64_t>(1, options_.eval_tokens / options_.seq_len));
    ValSet v{ds.domain, dir, std::vector<int32_t>(size_t(windows * window))};
    ds.read(0, v.tokens.size(), v.tokens.data());
    val_.push_back(std::move(v));
  }
  const size_t T = size_t(options_.micro_batch * options_.seq_len);
  ids_BL_.resize(T);
  targets_BL_.resize(T);
  domain_B_.resize(size_t(options_.micro_batch));
}

void Trainer::load_model(const fs::path& dir) {
  model_ = model::load_transformer(config_, dir, *backend_);
  if (!config_.is_moe()) return;
  model_->set_moe_options(moe_options_);
  dirichlet_shaping_ = moe_options_.dirichlet_coef > 0;
  if (options_.expert_bias_rate > 0)
    for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
      if (!config_.is_moe_layer(l)) continue;
      // dots1 saved the bias as e_score_correction_bias: the balance learned so far carries on.
      const float* saved = model_->params().find(router_bias_name(l));
      const size_t E = size_t(moe_options_.num_experts);
      backend::Buffer<float>& bias = model_->expert_bias(l);
      bias.reset(*backend_, E);  // zeros
      if (saved) backend_->copy(bias.data(), saved, E * sizeof(float));
    }
}

void Trainer::init_optimizer() {
  if (options_.init_optimizer != "from-dense") return;  // fresh: zero moments
  const fs::path file = dense_optimizer_file(options_.dense_optimizer);
  MomentBroadcast b = broadcast_dense_moments(*optimizer_, file);
  std::string fresh;
  for (size_t i = 0; i < b.fresh.size() && i < 3; ++i) fresh += (i ? ", " : "") + b.fresh[i];
  if (b.fresh.size() > 3) fresh += ", …";
  if (!is_writer()) return;
  std::printf("optimizer: moments of %lld parameters copied from %s; %zu start fresh%s%s%s\n",
              static_cast<long long>(b.copied), file.c_str(), b.fresh.size(), b.fresh.empty() ? "" : " (",
              fresh.c_str(), b.fresh.empty() ? "" : ")");
  std::fflush(stdout);
}

void Trainer::restore(const fs::path& checkpoint) {
  load_optimizer_state(*optimizer_, checkpoint / kOptimizerFile);
  state_ = read_trainer_state(checkpoint);
  const std::string state_file = (checkpoint / kTrainerStateFile).string();
  if (state_.options_digest != options_digest())
    throw Error("the checkpoint was written with other options than the run record's (config.json edited?)",
                state_file);
  batcher_->restore(state_.data);
  for (const auto& [layer, bias] : state_.expert_bias) {
    if (layer >= config_.num_hidden_layers || !config_.is_moe_layer(layer) ||
        int64_t(bias.size()) != moe_options_.num_experts)
      throw Error("expert_bias of layer " + std::to_string(layer) + " does not fit the model", state_file);
    model_->set_expert_bias(layer, bias);
  }
  if (!is_writer()) return;
  std::printf("resuming %s from %s (step %lld of %lld)\n", run_.root.c_str(), checkpoint.c_str(),
              static_cast<long long>(state_.step), static_cast<long long>(options_.steps));
  std::fflush(stdout);  // before the progress lines on stderr
}

// FNV-mixed hash of the options a resume must keep (every option except kResumeMutableOptions).
std::string Trainer::options_digest() const {
  Json kept = Json::object();
  for (const auto& [name, value] : options_json_.items())
    if (!resume_mutable(name)) kept[name] = value;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash_name(kept.dump())));
  return hex;
}

// {DOMAIN: [α per expert]} of a per-domain Dirichlet prior; null without one.
Json Trainer::dirichlet_domain_record() const {
  if (moe_options_.dirichlet_domain_alpha_DE.empty()) return nullptr;
  Json record = Json::object();
  for (size_t d = 0; d < moe_options_.dirichlet_domain_alpha_DE.size(); ++d)
    record[batcher_->domains()[d].domain] = moe_options_.dirichlet_domain_alpha_DE[d];
  return record;
}

Json Trainer::run_record() const {
  Json data = Json::array();
  for (size_t d = 0; d < sources_.size(); ++d)
    data.push_back({{"dir", sources_[d].dir.string()},
                    {"domain", batcher_->domains()[d].domain},
                    {"weight", sources_[d].weight},
                    {"tokens", batcher_->domains()[d].tokens}});
  Json val = Json::array();
  for (const auto& v : val_)
    val.push_back({{"dir", v.dir.string()}, {"domain", v.domain}, {"eval_tokens", int64_t(v.tokens.size()) / (options_.seq_len + 1) * options_.seq_len}});
  Json routing = nullptr;
  if (config_.is_moe())
    routing = {{"mode", moe_options_.mode == model::RoutingMode::kExpertChoice ? "expert-choice" : "token-choice"},
               {"num_experts", moe_options_.num_experts},
               {"top_k", moe_options_.top_k},
               {"capacity_factor", moe_options_.capacity_factor},
               {"jitter", moe_options_.jitter},
               {"aux_loss_coef", moe_options_.aux_loss_coef},
               {"z_loss_coef", moe_options_.z_loss_coef},
               {"expert_bias_rate", options_.expert_bias_rate},
               {"dirichlet_alpha", moe_options_.dirichlet_alpha_E},
               {"dirichlet_domain_alpha", dirichlet_domain_record()},
               {"dirichlet_coef", moe_options_.dirichlet_coef},
               {"dirichlet_steps", options_.dirichlet_steps}};
  Json record = {{"format", kRunFormat},
                 {"version", 1},
                 {"options", options_json_},
                 {"model", {{"path", fs::absolute(options_.model).lexically_normal().string()}, {"config", model_config_to_json(config_)}}},
                 {"routing", routing},
                 {"flops_per_token",
                  {{"matmul_params", flops_.matmul_params},
                   {"attention", flops_.attention},
                   {"forward", flops_.forward},
                   {"train", flops_.train}}},
                 {"tokens_per_step", tokens_per_step()},
                 {"data", data},
                 {"val", val}};
  if (group_.size() > 1) record["world_size"] = group_.size();  // data-parallel ranks (tokens_per_step counts them)
  return record;
}

}  // namespace upcycle::train
