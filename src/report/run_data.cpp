// Loading study and run directories into ReportData (see run_data.h). Field names follow
// docs/study.md (study.json, analysis JSON) and docs/training.md (config.json, metrics.jsonl).
#include "report/run_data.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "core/error.h"
#include "core/file_util.h"
#include "core/json.h"
#include "report/lr_sweep.h"
#include "report/seed_runs.h"

namespace upcycle::report {
namespace fs = std::filesystem;
namespace {

using ToX = std::function<double(double flops)>;

const Json* field(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

double number(const Json& obj, const char* key, const std::string& where, const fs::path& file) {
  const Json* v = field(obj, key);
  if (v == nullptr || !v->is_number()) throw Error(where + ": \"" + key + "\" is missing or not a number", file.string());
  return v->get<double>();
}

std::optional<double> optional_number(const Json& obj, const char* key, const std::string& where, const fs::path& file) {
  const Json* v = field(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) throw Error(where + ": \"" + key + "\" is not a number", file.string());
  return v->get<double>();
}

std::string text(const Json& obj, const char* key, const std::string& where, const fs::path& file) {
  const Json* v = field(obj, key);
  if (v == nullptr || !v->is_string()) throw Error(where + ": \"" + key + "\" is missing or not a string", file.string());
  return v->get<std::string>();
}

// A count read from a JSON number: outside ±2^53 (or NaN) it is an Error, not an undefined float → int64
// conversion (the fuzz target metrics_jsonl feeds such numbers).
int64_t to_count(double v, const char* key, const std::string& where, const fs::path& file) {
  if (!(std::fabs(v) <= 9007199254740992.0)) throw Error(where + ": \"" + key + "\" is out of range", file.string());
  return int64_t(v);
}

// obj[key] when it is a string, `fallback` when absent or null; any other type is an Error (nlohmann's
// value() would throw its own type_error, an internal error).
std::string string_or(const Json& obj, const char* key, const std::string& fallback, const fs::path& file) {
  const Json* v = field(obj, key);
  if (v == nullptr) return fallback;
  if (!v->is_string()) throw Error(std::string("\"") + key + "\" is not a string", file.string());
  return v->get<std::string>();
}

std::vector<double> numbers(const Json& v, const std::string& where, const fs::path& file) {
  if (!v.is_array()) throw Error(where + " is not an array of numbers", file.string());
  std::vector<double> out;
  for (const auto& e : v) {
    if (!e.is_number()) throw Error(where + " is not an array of numbers", file.string());
    out.push_back(e.get<double>());
  }
  return out;
}

// metrics.jsonl records; a last line without its newline that does not parse is a record being written.
std::vector<Json> read_metrics(const fs::path& file) {
  const std::string data = read_text_file(file, "metrics log");
  std::vector<Json> records;
  size_t pos = 0, line_no = 0;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    const bool complete = end != std::string::npos;
    if (!complete) end = data.size();
    const std::string_view line(data.data() + pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    Json record = Json::parse(line, nullptr, false);
    if (record.is_discarded() && !complete) break;
    if (record.is_discarded() || !record.is_object())
      throw Error("metrics log line " + std::to_string(line_no) + " is not a JSON object", file.string());
    records.push_back(std::move(record));
  }
  return records;
}

std::vector<LayerLoad> parse_moe(const Json& moe, const std::string& where, const fs::path& file) {
  std::vector<LayerLoad> out;
  if (!moe.is_array()) throw Error(where + ": \"moe\" is not an array", file.string());
  for (const auto& l : moe) {
    const Json* load = field(l, "load");
    if (load == nullptr) throw Error(where + ": a \"moe\" entry has no \"load\"", file.string());
    out.push_back({to_count(number(l, "layer", where, file), "layer", where, file), numbers(*load, where + " moe load", file)});
  }
  return out;
}

// Averages per-layer loads of several records, weighted (eval_tokens).
std::vector<LayerLoad> mean_loads(const std::vector<std::pair<std::vector<LayerLoad>, double>>& parts) {
  if (parts.empty()) return {};
  std::vector<LayerLoad> out = parts[0].first;
  double total = 0;
  for (auto& l : out) std::fill(l.load.begin(), l.load.end(), 0.0);
  for (const auto& [layers, weight] : parts) {
    if (layers.size() != out.size()) continue;
    total += weight;
    for (size_t i = 0; i < layers.size(); ++i)
      for (size_t e = 0; e < std::min(layers[i].load.size(), out[i].load.size()); ++e) out[i].load[e] += weight * layers[i].load[e];
  }
  for (auto& l : out)
    for (auto& v : l.load) v = total > 0 ? v / total : 0;
  return out;
}

void read_metrics_into(Variant& v, const fs::path& file, const ToX& to_x) {
  const std::vector<Json> records = read_metrics(file);
  v.started = true;
  std::map<int64_t, std::map<std::string, LossPoint>> evals;  // step → domain → point
  std::map<int64_t, std::vector<std::pair<std::vector<LayerLoad>, double>>> eval_loads;
  std::vector<LayerLoad> last_train_load;
  for (size_t i = 0; i < records.size(); ++i) {
    const Json& r = records[i];
    const std::string where = "metrics record " + std::to_string(i + 1);
    const std::string kind = text(r, "kind", where, file);
    const auto step = to_count(number(r, "step", where, file), "step", where, file);
    const double flops = number(r, "flops", where, file);
    const double tokens = number(r, "tokens", where, file);
    v.steps_done = std::max(v.steps_done, step);
    v.tokens_done = std::max(v.tokens_done, tokens);
    v.flops_done = std::max(v.flops_done, flops);
    const Json* moe = field(r, "moe");
    if (moe != nullptr && !moe->empty()) v.kind = "moe";
    if (kind == "train") {
      if (moe != nullptr) last_train_load = parse_moe(*moe, where, file);
    } else if (kind == "eval") {
      const std::string domain = text(r, "domain", where, file);
      const std::optional<double> loss = optional_number(r, "loss", where, file);
      if (!loss || !std::isfinite(*loss)) continue;
      evals[step][domain] = {step, flops, to_x(flops), *loss, tokens};
      if (std::find(v.domain_order.begin(), v.domain_order.end(), domain) == v.domain_order.end()) v.domain_order.push_back(domain);
      if (moe != nullptr)
        eval_loads[step].push_back({parse_moe(*moe, where, file), optional_number(r, "eval_tokens", where, file).value_or(1)});
    }
  }
  std::set<std::string> all_domains;
  for (const auto& [step, by_domain] : evals)
    for (const auto& [domain, p] : by_domain) {
      v.domain_loss[domain].push_back(p);
      all_domains.insert(domain);
    }
  for (const auto& [step, by_domain] : evals) {
    if (by_domain.size() != all_domains.size()) continue;  // an evaluation cut short
    double sum = 0;
    for (const auto& [domain, p] : by_domain) sum += p.loss;
    const LossPoint& any = by_domain.begin()->second;
    v.mean_loss.push_back({step, any.flops, any.x, sum / double(by_domain.size()), any.tokens});
  }
  v.final_load = eval_loads.empty() ? last_train_load : mean_loads(eval_loads.rbegin()->second);
}

// runs/<variant>/analysis/step-NNNNNNNN.json, by step.
void read_analysis_into(Variant& v, const fs::path& dir, const ToX& to_x) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("step-") && name.ends_with(".json")) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::map<int64_t, double> flops_at_step{{0, 0.0}};
  for (const auto& p : v.mean_loss) flops_at_step[p.step] = p.flops;
  for (const auto& file : files) {
    const Json a = read_json_file(file, "analysis JSON");
    if (!a.is_object() || string_or(a, "format", "", file) != "upcycle-analysis")
      throw Error("not an analysis JSON (\"format\" is not \"upcycle-analysis\")", file.string());
    const std::optional<double> step_json = optional_number(a, "step", "analysis", file);
    int64_t step = step_json ? to_count(*step_json, "step", "analysis", file) : std::stoll(file.stem().string().substr(5));
    std::optional<double> flops = optional_number(a, "flops", "analysis", file);
    if (!flops && flops_at_step.count(step)) flops = flops_at_step[step];
    if (!flops) continue;  // no way to place it on the compute axis
    const Json* summary = field(a, "summary");
    if (summary == nullptr) throw Error("analysis JSON has no \"summary\"", file.string());
    v.analysis.push_back({step, to_x(*flops), optional_number(*summary, "expert_similarity_mean", "summary", file),
                          optional_number(*summary, "dense_similarity_mean", "summary", file),
                          optional_number(*summary, "domain_specialization", "summary", file)});
    const Json* layers = field(a, "layers");
    if (layers == nullptr || !layers->is_array() || layers->empty()) continue;
    const Json& mid = (*layers)[layers->size() / 2];
    const Json* domain_load = field(mid, "domain_load");
    if (domain_load == nullptr || !domain_load->is_object()) continue;
    DomainRouting routing{to_count(number(mid, "layer", "analysis layer", file), "layer", "analysis layer", file), step, {}, {}};
    for (const auto& [domain, load] : domain_load->items()) {
      routing.domains.push_back(domain);
      routing.load.push_back(numbers(load, "domain_load." + domain, file));
    }
    v.routing = std::move(routing);
  }
  std::sort(v.analysis.begin(), v.analysis.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
}

Variant load_run(const fs::path& dir, const ToX& to_x);

std::vector<std::string> strings(const Json& obj, const char* key) {
  std::vector<std::string> out;
  if (const Json* c = field(obj, key); c != nullptr && c->is_array())
    for (const auto& x : *c)
      if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}

// A run directory of a study variant: its metrics and analyses (none yet: pending).
void read_run_files(Variant& v, const ToX& to_x) {
  const std::string kind = v.kind;
  std::error_code ec;
  if (fs::is_regular_file(v.run_dir / "metrics.jsonl", ec)) read_metrics_into(v, v.run_dir / "metrics.jsonl", to_x);
  v.kind = kind;  // the study says what the variant is
  if (!v.started) v.status = "pending";
  read_analysis_into(v, v.run_dir / "analysis", to_x);
}

// One entry of study.json "variants": a single run ("run"), or one run per seed ("runs", each with
// "seed", "run", "status", "commands") folded into the variant's mean curves.
Variant load_study_variant(const Json& j, const fs::path& dir, const fs::path& file, double dense_sunk_flops) {
  Variant v;
  v.name = text(j, "name", "study variant", file);
  const std::string where = "study variant '" + v.name + "'";
  v.kind = text(j, "kind", where, file);
  if (v.kind != "dense" && v.kind != "moe") throw Error(where + ": \"kind\" must be \"dense\" or \"moe\"", file.string());
  v.description = string_or(j, "description", "", file);
  v.status = string_or(j, "status", "pending", file);
  v.sweep = string_or(j, "sweep", "", file);
  v.lr = optional_number(j, "lr", where, file);
  if (!v.sweep.empty() && !(v.lr && *v.lr > 0))
    throw Error(where + ": a learning-rate sweep's run needs a positive \"lr\"", file.string());
  v.sunk_flops = number(j, "sunk_flops", where, file);
  v.budget_flops = optional_number(j, "budget_flops", where, file).value_or(0);
  v.planned_steps = to_count(optional_number(j, "steps", where, file).value_or(0), "steps", where, file);
  v.tokens_per_step = optional_number(j, "tokens_per_step", where, file).value_or(0);
  v.train_flops_per_token = optional_number(j, "train_flops_per_token", where, file).value_or(0);
  v.commands = strings(j, "commands");
  const ToX to_x = [sunk = v.sunk_flops, dense_sunk_flops](double f) { return extra_compute_percent(sunk, f, dense_sunk_flops); };
  const Json* runs = field(j, "runs");
  if (runs == nullptr) {
    v.run_dir = dir / text(j, "run", where, file);
    read_run_files(v, to_x);
    return v;
  }
  if (!runs->is_array() || runs->empty()) throw Error(where + ": \"runs\" is not a list of seed runs", file.string());
  const Variant plan = v;  // every seed run has the variant's plan: seeds change no shape
  for (const Json& r : *runs) {
    Variant s = plan;
    s.seed = to_count(number(r, "seed", where + " run", file), "seed", where + " run", file);
    s.name = v.name + " · seed " + std::to_string(*s.seed);
    s.run_dir = dir / text(r, "run", where + " run", file);
    s.status = string_or(r, "status", "pending", file);
    s.commands = strings(r, "commands");
    read_run_files(s, to_x);
    v.seed_runs.push_back(std::move(s));
  }
  aggregate_seed_runs(v);
  if (!v.started) v.status = "pending";
  return v;
}

ReportData load_study(const fs::path& dir) {
  const fs::path file = dir / "study.json";
  const Json s = read_json_file(file, "study.json");
  if (!s.is_object() || string_or(s, "format", "", file) != "upcycle-study")
    throw Error("not a study file (\"format\" is not \"upcycle-study\")", file.string());
  ReportData d;
  d.name = text(s, "name", "study", file);
  d.x_axis = XAxis::kExtraComputePercent;
  const Json* dense = field(s, "dense");
  if (dense == nullptr) throw Error("study: \"dense\" is missing", file.string());
  d.dense_sunk_flops = number(*dense, "sunk_flops", "study dense", file);
  if (!(d.dense_sunk_flops > 0)) throw Error("study: dense \"sunk_flops\" must be > 0", file.string());
  d.extra_compute = optional_number(s, "extra_compute", "study", file).value_or(0);
  d.dense_sunk_tokens = optional_number(*dense, "sunk_tokens", "study dense", file).value_or(0);
  if (const Json* c = field(*dense, "commands"); c != nullptr && c->is_array())
    for (const auto& x : *c)
      if (x.is_string()) d.dense_commands.push_back(x.get<std::string>());
  if (const Json* pre = field(*dense, "pretrain_run")) {
    if (!pre->is_string()) throw Error("study: dense \"pretrain_run\" is not a string", file.string());
    const fs::path run = dir / pre->get<std::string>();
    std::error_code ec;
    if (fs::is_directory(run, ec)) {  // a study copied without it still reports
      const double sunk = d.dense_sunk_flops;
      d.dense_pretrain = load_run(run, [sunk](double f) { return extra_compute_percent(0, f, sunk); });
      d.dense_pretrain->name = kDensePretrainName;
      d.dense_pretrain->commands = d.dense_commands;
    }
  }
  if (const Json* domains = field(s, "domains"); domains != nullptr && domains->is_array())
    for (const auto& x : *domains)
      if (x.is_string()) d.domains.push_back(x.get<std::string>());
  const Json* variants = field(s, "variants");
  if (variants == nullptr || !variants->is_array()) throw Error("study: \"variants\" is missing or not an array", file.string());
  for (const auto& j : *variants) d.variants.push_back(load_study_variant(j, dir, file, d.dense_sunk_flops));
  fold_lr_sweeps(d);
  return d;
}

Variant load_run(const fs::path& dir, const ToX& to_x) {
  const fs::path file = dir / "config.json";
  const Json c = read_json_file(file, "run config.json");
  if (!c.is_object() || string_or(c, "format", "", file) != "upcycle-train-run")
    throw Error("not a study or train run directory (config.json \"format\" is not \"upcycle-train-run\")", file.string());
  Variant v;
  v.name = fs::path(dir).lexically_normal().filename().string();
  if (v.name.empty()) v.name = fs::path(dir).lexically_normal().parent_path().filename().string();
  v.run_dir = dir;
  v.tokens_per_step = optional_number(c, "tokens_per_step", "run config", file).value_or(0);
  if (const Json* f = field(c, "flops_per_token")) v.train_flops_per_token = optional_number(*f, "train", "flops_per_token", file).value_or(0);
  if (const Json* o = field(c, "options")) v.planned_steps = to_count(optional_number(*o, "steps", "options", file).value_or(0), "steps", "options", file);
  const fs::path metrics = dir / "metrics.jsonl";
  std::error_code ec;
  if (fs::is_regular_file(metrics, ec)) read_metrics_into(v, metrics, to_x);
  v.status = !v.started ? "pending" : v.planned_steps > 0 && v.steps_done >= v.planned_steps ? "done" : "running";
  v.budget_flops = double(v.planned_steps) * v.tokens_per_step * v.train_flops_per_token;
  read_analysis_into(v, dir / "analysis", to_x);
  return v;
}

}  // namespace

double extra_compute_percent(double variant_sunk_flops, double run_flops, double dense_sunk_flops) {
  return 100.0 * (variant_sunk_flops + run_flops - dense_sunk_flops) / dense_sunk_flops;
}

bool Variant::finished() const {
  if (seeded())
    return std::all_of(seed_runs.begin(), seed_runs.end(), [](const Variant& s) { return s.finished(); });
  return status == "done" || (planned_steps > 0 && steps_done >= planned_steps);
}

std::optional<double> Variant::final_mean_loss() const {
  if (mean_loss.empty()) return std::nullopt;
  return mean_loss.back().loss;
}

const std::vector<LossPoint>* Variant::loss_curve(const std::string& domain) const {
  if (domain.empty()) return &mean_loss;
  auto it = domain_loss.find(domain);
  return it == domain_loss.end() ? nullptr : &it->second;
}

std::optional<double> Variant::final_domain_loss(const std::string& domain) const {
  auto it = domain_loss.find(domain);
  if (it == domain_loss.end() || it->second.empty()) return std::nullopt;
  return it->second.back().loss;
}

const Variant* ReportData::find(const std::string& name) const {
  for (const auto& v : variants)
    if (v.name == name) return &v;
  return nullptr;
}

namespace {

// Linear interpolation of the loss along one coordinate of the points (flops or tokens, increasing).
std::optional<double> loss_at(const std::vector<LossPoint>& curve, double LossPoint::*along, double at) {
  for (size_t i = 0; i < curve.size(); ++i) {
    if (curve[i].*along == at) return curve[i].loss;
    if (i > 0 && curve[i - 1].*along < at && at < curve[i].*along) {
      const double t = (at - curve[i - 1].*along) / (curve[i].*along - curve[i - 1].*along);
      return curve[i - 1].loss + t * (curve[i].loss - curve[i - 1].loss);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<double> loss_at_flops(const std::vector<LossPoint>& curve, double flops) {
  return loss_at(curve, &LossPoint::flops, flops);
}

std::optional<double> loss_at_tokens(const std::vector<LossPoint>& curve, double tokens) {
  return loss_at(curve, &LossPoint::tokens, tokens);
}

ReportData load_report_data(const std::vector<fs::path>& dirs) {
  if (dirs.empty()) throw Error("give a study directory or one or more train run directories");
  ReportData d;
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw Error("no such directory", dir.string());
    const bool study = fs::exists(dir / "study.json", ec);
    if (study && dirs.size() > 1)
      throw Error("a study directory is reported on its own (give it alone, or give run directories)", dir.string());
    if (study) {
      d = load_study(dir);
    } else {
      d.variants.push_back(load_run(dir, [](double f) { return f; }));
      d.name = dirs.size() == 1 ? d.variants.back().name : std::to_string(dirs.size()) + " training runs";
    }
    d.sources.push_back(dir.string());
  }
  std::set<std::string> names;
  for (auto& v : d.variants) {
    const std::string base = v.name;
    for (int k = 2; !names.insert(v.name).second; ++k) v.name = base + "-" + std::to_string(k);  // runs named alike
    if (d.x_axis == XAxis::kFlops)
      for (const auto& domain : v.domain_order)
        if (std::find(d.domains.begin(), d.domains.end(), domain) == d.domains.end()) d.domains.push_back(domain);
  }
  return d;
}

}  // namespace upcycle::report
