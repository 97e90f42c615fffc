// SPEC.yaml → StudySpec (see study_spec.h). Strict: unknown keys are errors, since a misspelt key in
// an experiment silently changes what is compared.
#include "study/study_spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "core/error.h"
#include "train/trainer_options.h"

namespace upcycle::study {
namespace {

namespace fs = std::filesystem;

// Flags the study sets itself for each command: a spec that sets them would break the equal-compute
// plan or the directory layout.
const std::set<std::string> kStudyTrainFlags = {"model", "data",    "val",        "out",  "steps",     "eval-every",
                                                "save-every", "keep", "eval-at-start", "resume", "force", "stop-after"};
const std::set<std::string> kStudyConvertFlags = {"force", "recipe"};
const std::set<std::string> kStudyInitFlags = {"force"};
// The learning-rate schedule's shape (`upcycle train` flags): `schedule-offset` is left out, it places a
// continuation on the dense run's curve and means nothing for a fresh model.
const std::set<std::string, std::less<>> kScheduleFlags = {"schedule", "lr",      "min-lr",        "warmup",
                                                           "warmup-start-lr", "decay-fraction", "timescale"};

class SpecReader {
 public:
  explicit SpecReader(fs::path file) : file_(std::move(file)), dir_(file_.parent_path()) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error(key.empty() ? what : key + ": " + what, file_.string());
  }
  void require_map(const YAML::Node& node, const std::string& key) const {
    if (!node.IsMap()) fail(key, "expected a mapping (key: value lines)");
  }
  void check_keys(const YAML::Node& map, const std::set<std::string>& known, const std::string& where) const {
    for (const auto& kv : map) {
      const std::string k = kv.first.Scalar();
      if (!known.contains(k)) {
        std::string list;
        for (const auto& name : known) list += (list.empty() ? "" : ", ") + name;
        fail(where.empty() ? k : where + "." + k, "unknown key (known: " + list + ")");
      }
    }
  }
  std::string scalar(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) fail(key, "expected a single value");
    return node.Scalar();
  }
  int64_t integer(const YAML::Node& node, const std::string& key, int64_t min) const {
    int64_t v = 0;
    const std::string s = scalar(node, key);
    if (!YAML::convert<int64_t>::decode(node, v)) fail(key, "expected an integer, got '" + s + "'");
    if (v < min) fail(key, "must be at least " + std::to_string(min) + " (got " + s + ")");
    return v;
  }
  double positive(const YAML::Node& node, const std::string& key) const {
    double v = 0;
    const std::string s = scalar(node, key);
    if (!YAML::convert<double>::decode(node, v) || !(v > 0) || v > 1e30)
      fail(key, "expected a positive number, got '" + s + "'");
    return v;
  }
  std::vector<std::string> strings(const YAML::Node& node, const std::string& key) const {
    if (node.IsScalar()) return {node.Scalar()};
    if (!node.IsSequence()) fail(key, "expected a list");
    std::vector<std::string> out;
    for (size_t i = 0; i < node.size(); ++i) out.push_back(scalar(node[i], key + "[" + std::to_string(i) + "]"));
    return out;
  }
  fs::path path(const std::string& text, const std::string& key) const {
    if (text.empty()) fail(key, "empty path");
    const fs::path p = fs::path(text).is_relative() ? dir_ / text : fs::path(text);
    // Non-throwing: a spec's path may be anything, even too long for the OS (fuzz_study_spec found an
    // escaping filesystem_error); the existence checks below then report it.
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(p, ec);
    return ec ? p.lexically_normal() : canonical;
  }
  fs::path existing_dir(const YAML::Node& node, const std::string& key) const {
    const fs::path p = path(scalar(node, key), key);
    if (std::error_code ec; !fs::is_directory(p, ec)) fail(key, "'" + p.string() + "' is not a directory");
    return p;
  }

  Flags flags(const YAML::Node& node, const std::string& key, const std::set<std::string>& reserved,
              const std::string& command) const {
    Flags out;
    if (!node || node.IsNull()) return out;
    require_map(node, key);
    for (const auto& kv : node) {
      std::string name = kv.first.Scalar();
      std::replace(name.begin(), name.end(), '_', '-');
      if (name.starts_with("-")) fail(key + "." + name, "write flag names without dashes");
      if (reserved.contains(name))
        fail(key + "." + name, "--" + name + " is set by the study itself for `upcycle " + command + "`");
      const std::string flag_key = key + "." + name;
      if (kv.second.IsScalar()) {
        bool b = false;
        const std::string& s = kv.second.Scalar();
        if ((s == "true" || s == "false") && YAML::convert<bool>::decode(kv.second, b)) {
          if (b) out.push_back({name, {}});
          continue;
        }
      }
      std::vector<std::string> values = strings(kv.second, flag_key);
      if (values.empty()) fail(flag_key, "empty list");
      out.push_back({name, std::move(values), kv.second.IsSequence()});
    }
    return out;
  }

  const fs::path& file() const { return file_; }

 private:
  fs::path file_, dir_;
};

bool safe_name(const std::string& name) {
  if (name.empty() || name[0] == '.' || name.size() > 80) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

DenseSpec read_dense(const SpecReader& r, const YAML::Node& node) {
  DenseSpec d;
  if (!node) r.fail("dense", "missing (a `checkpoint:` to start from, or `init:` + `pretrain_steps:`)");
  r.require_map(node, "dense");
  r.check_keys(node, {"checkpoint", "sunk_flops", "init", "tokenizer", "pretrain_steps", "keep_steps"}, "dense");
  const bool given = bool(node["checkpoint"]), pretrain = node["init"] || node["pretrain_steps"];
  if (given == bool(pretrain))
    r.fail("dense", "give either `checkpoint:` (an existing dense model) or `init:` + `pretrain_steps:` (pretrain one)");
  if (given) {
    d.checkpoint = r.existing_dir(node["checkpoint"], "dense.checkpoint");
    if (node["sunk_flops"]) d.sunk_flops = r.positive(node["sunk_flops"], "dense.sunk_flops");
    if (node["keep_steps"] || node["tokenizer"]) r.fail("dense", "keep_steps and tokenizer belong to a pretraining study");
    return d;
  }
  if (!node["init"] || !node["pretrain_steps"]) r.fail("dense", "pretraining needs both `init:` and `pretrain_steps:`");
  if (node["sunk_flops"]) r.fail("dense.sunk_flops", "only for a given checkpoint (pretraining counts its FLOPs)");
  d.init = r.flags(node["init"], "dense.init", kStudyInitFlags, "init");
  d.pretrain_steps = r.integer(node["pretrain_steps"], "dense.pretrain_steps", 1);
  if (node["tokenizer"]) {
    d.tokenizer = r.path(r.scalar(node["tokenizer"], "dense.tokenizer"), "dense.tokenizer");
    if (std::error_code ec; !fs::is_regular_file(d.tokenizer, ec)) r.fail("dense.tokenizer", "'" + d.tokenizer.string() + "' is not a file");
  }
  if (node["keep_steps"]) {
    if (!node["keep_steps"].IsSequence()) r.fail("dense.keep_steps", "expected a list of steps");
    for (size_t i = 0; i < node["keep_steps"].size(); ++i) {
      const int64_t s = r.integer(node["keep_steps"][i], "dense.keep_steps[" + std::to_string(i) + "]", 1);
      if (s > d.pretrain_steps) r.fail("dense.keep_steps", "step " + std::to_string(s) + " is past pretrain_steps");
      d.keep_steps.push_back(s);
    }
  }
  return d;
}

VariantSpec read_variant(const SpecReader& r, const YAML::Node& node, const std::string& key) {
  r.require_map(node, key);
  r.check_keys(node, {"name", "description", "convert", "train", "from", "extra_compute"}, key);
  VariantSpec v;
  if (!node["name"]) r.fail(key, "missing `name:`");
  v.name = r.scalar(node["name"], key + ".name");
  if (!safe_name(v.name)) r.fail(key + ".name", "'" + v.name + "': use letters, digits, '-', '_' and '.' only");
  const std::string where = "variants." + v.name;
  if (node["description"]) v.description = r.scalar(node["description"], where + ".description");
  if (node["convert"]) v.convert = r.flags(node["convert"], where + ".convert", kStudyConvertFlags, "convert");
  v.train = r.flags(node["train"], where + ".train", kStudyTrainFlags, "train");
  if (node["from"]) v.from = r.integer(node["from"], where + ".from", 0);
  if (node["extra_compute"]) v.extra_compute = r.positive(node["extra_compute"], where + ".extra_compute");
  return v;
}

// `seeds: [1, 2, 3]`: a list, not a count, so that adding a seed never renames the runs of the others.
std::vector<int64_t> read_seeds(const SpecReader& r, const YAML::Node& node) {
  if (!node.IsSequence()) r.fail("seeds", "expected a list of distinct positive integers, e.g. [1, 2, 3]");
  if (node.size() == 0) r.fail("seeds", "empty list (leave `seeds:` out for one run per variant)");
  std::vector<int64_t> seeds;
  for (size_t i = 0; i < node.size(); ++i) {
    const int64_t seed = r.integer(node[i], "seeds[" + std::to_string(i) + "]", 1);
    if (std::find(seeds.begin(), seeds.end(), seed) != seeds.end())
      r.fail("seeds", "seed " + std::to_string(seed) + " is listed twice");
    seeds.push_back(seed);
  }
  return seeds;
}

// With `seeds:` the study sets every run's --seed; a `seed` in a train map would make the seeds' runs
// identical or quietly override them.
void refuse_train_seed(const SpecReader& r, const Flags& flags, const std::string& key) {
  if (std::any_of(flags.begin(), flags.end(), [](const Flag& f) { return f.name == "seed"; }))
    r.fail(key + ".seed", "`seeds:` sets --seed of every run; remove it here (the dense pretraining's seed goes under `pretrain:`)");
}

const Flag* find_flag(const Flags& flags, std::string_view name) {
  auto it = std::find_if(flags.begin(), flags.end(), [&](const Flag& f) { return f.name == name; });
  return it == flags.end() ? nullptr : &*it;
}

// A sweep list written at `key` (`train.lr`, `variants.<v>.train.lr`): every value a positive number,
// none twice once written canonically (5e-4 and 0.0005 are one run). Rewrites the values canonically.
void check_lr_list(const SpecReader& r, Flags& flags, const std::string& key) {
  auto it = std::find_if(flags.begin(), flags.end(), [](const Flag& f) { return f.name == "lr"; });
  if (it == flags.end() || !it->list) return;
  std::vector<std::string> canonical;
  for (size_t i = 0; i < it->values.size(); ++i) {
    const std::string& text = it->values[i];
    char* end = nullptr;
    const double lr = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !(lr > 0) || lr > 1e30)
      r.fail(key + "[" + std::to_string(i) + "]", "expected a positive learning rate, got '" + text + "'");
    const std::string c = lr_text(lr);
    if (std::find(canonical.begin(), canonical.end(), c) != canonical.end())
      r.fail(key, "learning rate " + c + " is listed twice");
    canonical.push_back(c);
  }
  it->values = std::move(canonical);
}

// The spec's variants with every learning-rate sweep expanded, in the spec's order: a variant whose
// effective `lr` (variant_train_flags) is a list becomes one variant per value, in the list's order.
std::vector<VariantSpec> expand_lr_sweeps(const StudySpec& s) {
  std::vector<VariantSpec> out;
  for (const VariantSpec& v : s.variants) {
    const Flags effective = variant_train_flags(s, v);
    const Flag* lr = find_flag(effective, "lr");
    if (lr == nullptr || !lr->list) {
      out.push_back(v);
      continue;
    }
    for (const std::string& value : lr->values) {
      VariantSpec run = v;
      run.sweep = v.name;
      run.lr = value;
      run.name = v.name + "/" + lr_dir_name(value);
      run.train = merge_flags(v.train, {{"lr", {value}}});
      out.push_back(std::move(run));
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> flags_to_args(const Flags& flags) {
  std::vector<std::string> args;
  for (const Flag& f : flags) {
    args.push_back("--" + f.name);
    args.insert(args.end(), f.values.begin(), f.values.end());
  }
  return args;
}

bool has_flag(const Flags& flags, std::string_view name) {
  return std::any_of(flags.begin(), flags.end(), [&](const Flag& f) { return f.name == name; });
}

Flags merge_flags(const Flags& base, const Flags& override) {
  Flags out = base;
  for (const Flag& f : override) {
    auto same = std::find_if(out.begin(), out.end(), [&](const Flag& b) { return b.name == f.name; });
    if (same != out.end())
      *same = f;
    else
      out.push_back(f);
  }
  return out;
}

bool is_schedule_flag(std::string_view name) { return kScheduleFlags.contains(name); }

bool trains_from_scratch(const VariantSpec& variant) { return variant.convert && has_flag(*variant.convert, "from-scratch"); }

Flags variant_train_flags(const StudySpec& spec, const VariantSpec& variant) {
  Flags flags = spec.train;
  if (trains_from_scratch(variant)) {
    Flags schedule;
    for (const Flag& f : spec.pretrain)
      if (is_schedule_flag(f.name)) schedule.push_back(f);
    flags = merge_flags(flags, schedule);
  }
  return merge_flags(flags, variant.train);
}

std::string lr_text(double lr) {
  char text[40];
  std::snprintf(text, sizeof text, "%g", lr);
  if (std::strtod(text, nullptr) != lr) std::snprintf(text, sizeof text, "%.17g", lr);
  return text;
}

std::string lr_dir_name(const std::string& lr_text) { return "lr-" + lr_text; }

StudySpec parse_study_spec(const fs::path& given) {
  std::error_code ec;
  if (!fs::is_regular_file(given, ec)) throw Error("study spec not found (expected a YAML file)", given.string());
  StudySpec s;
  s.file = fs::canonical(given);
  SpecReader r(s.file);
  YAML::Node root;
  try {
    root = YAML::LoadFile(s.file.string());
  } catch (const YAML::Exception& e) {
    throw Error("not valid YAML: " + e.msg + " (line " + std::to_string(e.mark.line + 1) + ")", s.file.string());
  }
  r.require_map(root, "");
  r.check_keys(root, {"name", "description", "data", "val", "dense", "train", "pretrain", "extra_compute", "evals",
                      "analysis_tokens", "seeds", "variants"},
               "");
  s.name = root["name"] ? r.scalar(root["name"], "name") : s.file.stem().string();
  if (!root["data"]) r.fail("data", "missing: the tokenized datasets (`upcycle data tokenize` outputs) to train on");
  for (const std::string& item : r.strings(root["data"], "data")) {
    const train::DataSource source = train::parse_data_source(item);
    const fs::path dir = r.path(source.dir.string(), "data");
    if (std::error_code ec; !fs::is_directory(dir, ec)) r.fail("data", "'" + dir.string() + "' is not a dataset directory");
    const bool weighted = item.size() > source.dir.string().size();
    s.data.push_back(weighted ? dir.string() + item.substr(source.dir.string().size()) : dir.string());
    if (!root["val"]) s.val.push_back(dir);
  }
  if (s.data.empty()) r.fail("data", "empty list");
  if (root["val"]) {
    s.val.clear();
    for (const std::string& item : r.strings(root["val"], "val")) {
      const fs::path dir = r.path(item, "val");
      if (std::error_code ec; !fs::is_directory(dir, ec)) r.fail("val", "'" + dir.string() + "' is not a dataset directory");
      s.val.push_back(dir);
    }
  }
  s.dense = read_dense(r, root["dense"]);
  s.train = r.flags(root["train"], "train", kStudyTrainFlags, "train");
  s.pretrain = r.flags(root["pretrain"], "pretrain", kStudyTrainFlags, "train");
  if (root["pretrain"] && !s.dense.pretrains()) r.fail("pretrain", "only for a study that pretrains its dense model");
  check_lr_list(r, s.train, "train.lr");
  if (const Flag* lr = find_flag(s.pretrain, "lr"); lr != nullptr && lr->list)
    r.fail("pretrain.lr", "one value: the dense model is pretrained once (sweep the variants' `lr:` instead)");
  if (const Flag* lr = find_flag(s.train, "lr"); lr != nullptr && lr->list && s.dense.pretrains() && !find_flag(s.pretrain, "lr"))
    r.fail("train.lr", "a sweep for the variants; give the dense pretraining its single value as `pretrain: {lr: …}`");
  if (root["extra_compute"]) s.extra_compute = r.positive(root["extra_compute"], "extra_compute");
  if (root["evals"]) s.evals = r.integer(root["evals"], "evals", 1);
  if (root["analysis_tokens"]) s.analysis_tokens = r.integer(root["analysis_tokens"], "analysis_tokens", 1);
  if (root["seeds"]) s.seeds = read_seeds(r, root["seeds"]);
  if (!s.seeds.empty()) refuse_train_seed(r, s.train, "train");

  const YAML::Node variants = root["variants"];
  if (!variants || !variants.IsSequence() || variants.size() == 0)
    r.fail("variants", "expected a list of variants (each: name, and convert/train flags)");
  std::set<std::string> names;
  for (size_t i = 0; i < variants.size(); ++i) {
    VariantSpec v = read_variant(r, variants[i], "variants[" + std::to_string(i) + "]");
    if (!names.insert(v.name).second) r.fail("variants", "two variants are named '" + v.name + "'");
    if (v.from) {
      const auto& keep = s.dense.keep_steps;
      if (!s.dense.pretrains())
        r.fail("variants." + v.name + ".from", "needs a study that pretrains its dense model (dense.init)");
      if (*v.from != s.dense.pretrain_steps && std::find(keep.begin(), keep.end(), *v.from) == keep.end())
        r.fail("variants." + v.name + ".from",
               "step " + std::to_string(*v.from) + " is not kept: add it to dense.keep_steps");
    }
    if (!s.seeds.empty()) refuse_train_seed(r, v.train, "variants." + v.name + ".train");
    check_lr_list(r, v.train, "variants." + v.name + ".train.lr");
    s.variants.push_back(std::move(v));
  }
  s.variants = expand_lr_sweeps(s);
  return s;
}

}  // namespace upcycle::study
