// analyze_checkpoint (analyze.h): validate options, open and read every domain's windows (ids checked
// before any weight is read), evaluate the checkpoint per domain, then per MoE layer aggregate the
// routing (routing_analysis.h) and compare expert weights (expert_similarity.h) with each other and
// with the dense model's FFN of the same layer: neuron-matched (permutation-invariant) values in the
// reported fields, storage-order cosines as the *_ordered_mean fields. The dense FFN may be wider than
// the experts (fine-grained); then only the matched expert→dense value exists (ordered is null).
// Shape legend: D model, F expert width, Fd dense FFN width, E experts.
#include "analysis/analyze.h"

#include <algorithm>
#include <set>

#include "analysis/expert_similarity.h"
#include "analysis/routing_analysis.h"
#include "backend/backend.h"
#include "backend/host_memory.h"
#include "core/error.h"
#include "data/token_dataset.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "model/evaluate.h"
#include "model/load_model.h"
#include "model/model_views.h"
#include "model/parameters.h"
#include "train/train_checkpoint.h"

namespace upcycle::analysis {
namespace fs = std::filesystem;
namespace {

struct Domain {
  fs::path dir;
  data::TokenDataset dataset;
  int64_t windows = 0;
};

void validate(const AnalyzeOptions& o) {
  if (o.data.empty()) throw Error("missing --data (one or more dataset directories, one domain each)");
  if (o.split != "val" && o.split != "train") throw Error("--split must be val or train, not '" + o.split + "'");
  model::check_window_flags(o.seq_len, o.batch, o.max_tokens);
  backend::backend_kind_from_name(o.backend);  // throws for an unknown name
}

std::vector<Domain> open_domains(const AnalyzeOptions& o) {
  std::vector<Domain> domains;
  std::set<std::string> names;
  for (const fs::path& dir : o.data) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      throw Error("--data must be a dataset directory (upcycle data tokenize)", dir.string());
    Domain d{dir, data::open_dataset(dir, o.split == "train" ? data::Split::kTrain : data::Split::kVal), 0};
    if (!names.insert(d.dataset.domain).second)
      throw Error("two --data datasets have the domain '" + d.dataset.domain + "' (domains must differ)",
                  (dir / data::kDatasetFile).string());
    d.windows = model::count_windows(d.dataset.tokens, o.seq_len, o.max_tokens, o.split + " split", dir.string());
    domains.push_back(std::move(d));
  }
  return domains;
}

// The domain's windows, every id checked < vocab_size (the first bad one named with shard and position).
std::vector<int32_t> read_windows(const Domain& d, int64_t seq_len, int64_t vocab_size) {
  const uint64_t count = uint64_t(d.windows * (seq_len + 1));
  std::vector<int32_t> tokens(static_cast<size_t>(count));
  d.dataset.read(0, count, tokens.data());
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t id = uint32_t(tokens[size_t(i)]);
    if (int64_t(id) >= vocab_size) {
      const auto [shard, position] = d.dataset.locate(i);
      throw Error("token id " + std::to_string(id) + " at position " + std::to_string(position) +
                      " is out of range: the model's vocab_size is " + std::to_string(vocab_size),
                  d.dataset.shards[shard].info().path.string());
    }
  }
  return tokens;
}

struct DenseModel {
  ModelConfig config;
  model::TensorStore params;
};

DenseModel load_dense(const fs::path& dir) {
  DenseModel m{read_model_config(dir), {}};
  m.params = model::TensorStore::for_config(m.config, backend::host_memory());  // read on the host, never computed on
  Checkpoint ckpt = Checkpoint::open(dir);
  model::load_parameters(m.params, ckpt, model::checked_weight_table(m.config, ckpt));
  return m;
}

// The experts of MoE layer `layer` as [gate; up; down] pieces (shared experts excluded).
std::vector<WeightPieces> expert_pieces(const model::TensorStore& params, const ModelConfig& c, int64_t layer) {
  const model::MoeWeights w = model::moe_weight_views(params, c, layer);
  const size_t FD = size_t(c.moe_intermediate_size * c.hidden_size);
  std::vector<WeightPieces> experts;
  for (size_t e = 0; e < w.gate_FD.size(); ++e)
    experts.push_back({{w.gate_FD[e], FD}, {w.up_FD[e], FD}, {w.down_DF[e], FD}});
  return experts;
}

// The same experts as FFN views for the neuron-matched similarity.
std::vector<FfnView> expert_views(const std::vector<WeightPieces>& experts, const ModelConfig& c) {
  std::vector<FfnView> views;
  for (const WeightPieces& p : experts) views.push_back({p[0], p[1], p[2], c.moe_intermediate_size, c.hidden_size});
  return views;
}

// The dense FFN of the same layer (any width Fd) when it has the experts' model width, else nullopt.
std::optional<FfnView> dense_ffn_view(const DenseModel& dense, const ModelConfig& moe, int64_t layer) {
  const ModelConfig& c = dense.config;
  if (c.hidden_size != moe.hidden_size || layer >= c.num_hidden_layers || c.is_moe_layer(layer)) return std::nullopt;
  const auto all_layers = model::model_views(dense.params, c);  // kept alive: l points into it
  const auto& l = all_layers.layers[size_t(layer)];
  if (!l.gate_FD || !l.up_FD || !l.down_DF) return std::nullopt;
  const size_t FdD = size_t(c.intermediate_size * c.hidden_size);
  return FfnView{{l.gate_FD, FdD}, {l.up_FD, FdD}, {l.down_DF, FdD}, c.intermediate_size, c.hidden_size};
}

double mean_of(const std::vector<double>& v) {
  double sum = 0.0;
  for (double x : v) sum += x;
  return sum / double(v.size());
}

// dense_similarity (matched, E entries), its mean and the storage-order mean (equal widths only).
struct DenseSimilarity {
  Json values = nullptr, mean = nullptr, ordered_mean = nullptr;
};

DenseSimilarity dense_similarity(const std::vector<WeightPieces>& experts, const std::vector<FfnView>& views,
                                 const DenseModel* dense, const ModelConfig& config, int64_t layer) {
  DenseSimilarity out;
  if (!dense) return out;
  const std::optional<FfnView> ffn = dense_ffn_view(*dense, config, layer);
  if (!ffn) return out;
  const std::vector<double> matched_E = matched_similarity_to(views, *ffn);
  out.values = matched_E;
  out.mean = mean_of(matched_E);
  if (ffn->F == config.moe_intermediate_size)
    out.ordered_mean = mean_of(similarity_to(experts, WeightPieces{ffn->gate_FD, ffn->up_FD, ffn->down_DF}));
  return out;
}

Json optional_json(const std::optional<double>& v) { return v ? Json(*v) : Json(nullptr); }

// Mean of the layers' non-null `key` entries; null when there are none.
Json mean_over_layers(const Json& layers, const char* key) {
  double sum = 0.0;
  int64_t n = 0;
  for (const Json& l : layers)
    if (!l[key].is_null()) sum += l[key].get<double>(), ++n;
  return n ? Json(sum / double(n)) : Json(nullptr);
}

Json layer_json(const LayerRoutingAnalysis& r, const ModelConfig& config, const model::TensorStore& params,
                const DenseModel* dense) {
  Json domain_load = Json::object();
  for (const auto& [name, load] : r.domain_load) domain_load[name] = load;
  const std::vector<WeightPieces> experts = expert_pieces(params, config, r.layer);
  const std::vector<FfnView> views = expert_views(experts, config);
  const auto matched_EE = matched_similarity_matrix_EE(views);
  const auto ordered_EE = similarity_matrix_EE(experts);
  const DenseSimilarity d = dense_similarity(experts, views, dense, config, r.layer);
  return {{"layer", r.layer},
          {"experts", config.num_experts},
          {"top_k", config.num_experts_per_tok},
          {"load", r.load_E},
          {"dropped", r.dropped},
          {"entropy", r.entropy},
          {"top1", r.top1},
          {"aux", r.aux},
          {"domain_load", domain_load},
          {"domain_specialization", r.domain_specialization},
          {"expert_similarity", matched_EE},
          {"expert_similarity_mean", optional_json(mean_off_diagonal(matched_EE))},
          {"expert_similarity_ordered_mean", optional_json(mean_off_diagonal(ordered_EE))},
          {"dense_similarity", d.values},
          {"dense_similarity_mean", d.mean},
          {"dense_similarity_ordered_mean", d.ordered_mean}};
}

}  // namespace

uint64_t analysis_token_count(const AnalyzeOptions& options) {
  validate(options);
  uint64_t total = 0;
  for (const Domain& d : open_domains(options)) total += uint64_t(d.windows * options.seq_len);
  return total;
}

Json analyze_checkpoint(const AnalyzeOptions& o, Progress* progress) {
  validate(o);
  const ModelConfig config = read_model_config(o.checkpoint);
  const std::vector<Domain> domains = open_domains(o);
  std::vector<std::vector<int32_t>> tokens;
  for (const Domain& d : domains) tokens.push_back(read_windows(d, o.seq_len, config.vocab_size));
  std::optional<train::TrainerState> state;
  if (fs::exists(o.checkpoint / train::kTrainerStateFile)) state = train::read_trainer_state(o.checkpoint);
  std::optional<DenseModel> dense;
  if (o.dense) {
    read_model_config(*o.dense);  // a missing or bad dense model fails before the heavy work
    if (config.is_moe()) dense = load_dense(*o.dense);
  }

  auto backend = backend::make_backend(backend::backend_kind_from_name(o.backend));
  auto transformer = model::load_transformer(config, o.checkpoint, *backend);
  Json domains_json = Json::array();
  std::vector<std::vector<DomainRouting>> per_layer;  // [MoE layer][domain]
  for (size_t i = 0; i < domains.size(); ++i) {
    const model::EvalResult r = model::evaluate_windows(*transformer, tokens[i], o.seq_len, o.batch, progress);
    domains_json.push_back({{"domain", domains[i].dataset.domain},
                            {"data", domains[i].dir.string()},
                            {"split", o.split},
                            {"loss", r.loss},
                            {"tokens", r.tokens}});
    per_layer.resize(r.routing.size());
    for (size_t l = 0; l < r.routing.size(); ++l)
      per_layer[l].push_back({domains[i].dataset.domain, r.routing[l], r.tokens});
  }
  // The weight statistics read the experts on the host: a model on a device backend crosses once.
  const model::TensorStore* params = &transformer->params();
  model::TensorStore host_params;
  if (!backend->host_accessible()) params = &(host_params = params->copy_to(backend::host_memory()));
  Json layers = Json::array();
  for (const auto& layer_domains : per_layer)
    layers.push_back(layer_json(aggregate_layer_routing(layer_domains), config, *params,
                                dense ? &*dense : nullptr));
  Json summary = Json::object();
  for (const char* key : {"expert_similarity_mean", "dense_similarity_mean", "expert_similarity_ordered_mean",
                          "dense_similarity_ordered_mean", "domain_specialization", "entropy", "top1", "dropped"})
    summary[key] = mean_over_layers(layers, key);
  return {{"format", kAnalysisFormat},
          {"version", kAnalysisVersion},
          {"checkpoint", o.checkpoint.string()},
          {"step", state ? Json(state->step) : Json(nullptr)},
          {"flops", state ? Json(state->flops) : Json(nullptr)},
          {"dense", o.dense ? Json(o.dense->string()) : Json(nullptr)},
          {"seq_len", o.seq_len},
          {"domains", domains_json},
          {"layers", layers},
          {"summary", summary}};
}

}  // namespace upcycle::analysis
