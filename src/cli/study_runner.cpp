// See study_runner.h. Paths in study.json are relative to STUDY_DIR so a study directory can move.
#include "cli/study_runner.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <vector>

#include "analysis/analyze.h"
#include "cli/commands.h"
#include "cli/command_args.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/json.h"
#include "core/sha256.h"
#include "io/model_config.h"
#include "study/study_plan.h"
#include "study/study_runs.h"
#include "train/run_dir.h"
#include "train/train_checkpoint.h"

namespace upcycle::cli {
namespace {

namespace fs = std::filesystem;
using study::Flags;
using study::StudySpec;
using study::VariantSpec;

constexpr const char* kStudyFormat = "upcycle-study";

void say(const std::string& line) {
  std::printf("study: %s\n", line.c_str());
  std::fflush(stdout);
}

std::string format_number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", v);
  return text;
}

std::string relative_to(const fs::path& p, const fs::path& root) { return fs::relative(p, root).string(); }

Args concat(Args a, const Args& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A training checkpoint's FLOPs so far (trainer_state.json), or nullopt for a plain HF checkpoint.
std::optional<double> checkpoint_flops(const fs::path& checkpoint) {
  if (!fs::exists(checkpoint / train::kTrainerStateFile)) return std::nullopt;
  return train::read_trainer_state(checkpoint).flops;
}

// The run's final step when it is finished, i.e. its newest checkpoint is at `steps`.
bool run_finished(const fs::path& run, int64_t steps) {
  if (!fs::exists(train::RunPaths{run}.config())) return false;
  const auto latest = train::find_latest_checkpoint(train::RunPaths{run}.checkpoints());
  return latest && train::read_trainer_state(*latest).step >= steps;
}

// Starts a run or resumes it; returns the exit code of `upcycle train`.
int train_run(const fs::path& run, const Args& fresh_args, int64_t threads) {
  const Args thread_args = threads > 0 ? Args{"--threads", std::to_string(threads)} : Args{};
  if (fs::exists(train::RunPaths{run}.config()))
    return run_train(concat({"--out", run.string(), "--resume"}, thread_args));
  return run_train(concat(fresh_args, thread_args));
}

// Every command's flags, parsed by the commands' own tables before anything runs: a misspelt flag
// in the last variant must not surface after an hour of pretraining.
void check_study_flags(const StudySpec& spec) {
  const auto checked = [&](const std::string& key, auto&& parse) {
    try {
      parse();
    } catch (const Error& e) {
      throw Error(key + ": " + e.message(), spec.file.string());
    }
  };
  const Args placeholders = {"--model", "MODEL", "--data", "DATA", "--out", "RUN"};
  Flags train = spec.train;  // a learning-rate sweep's list is checked through each of its variants below
  std::erase_if(train, [](const study::Flag& f) { return f.name == "lr" && f.list; });
  checked("train", [&] { parse_train_args(concat(placeholders, study::flags_to_args(train))); });
  checked("pretrain", [&] {
    parse_train_args(concat(placeholders, study::flags_to_args(study::merge_flags(spec.train, spec.pretrain))));
  });
  const std::optional<int64_t> seed = study::run_seeds(spec).front();  // the flags every seed's run gets
  for (const VariantSpec& v : spec.variants) {
    checked("variants." + v.name + ".train", [&] {
      parse_train_args(concat(placeholders, study::flags_to_args(study::run_train_flags(spec, v, seed))));
    });
    if (const std::optional<Flags> convert = study::run_convert_flags(v, seed))
      checked("variants." + v.name + ".convert",
              [&] { check_convert_args(concat({"DENSE", "OUT"}, study::flags_to_args(*convert))); });
  }
}

// A study killed before its first study.json (written once the dense start is ready) leaves only the
// dense start's own outputs: models/dense-init, dense-pretrain/ and hidden temporary or staging files.
// The rerun resumes those from what is on disk, as after any later stop (found by the kill soak,
// tests/soak/kill_soak.py: such a directory used to be refused for good).
bool holds_only_dense_start(const fs::path& root) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (name != "models" && name != "dense-pretrain" && name.rfind('.', 0) != 0) return false;
  }
  return !ec;
}

struct DenseStart {
  fs::path checkpoint;           // the final dense checkpoint
  double sunk_flops = 0;         // its pretraining FLOPs
  std::map<int64_t, fs::path> by_step;  // pretraining checkpoints kept for `from`
  Json record;
};

class StudyRunner {
 public:
  struct StudyStopped {  // a training run stopped by a signal: the study exits with its code
    int code;
  };

  StudyRunner(const StudySpec& spec, const StudyRunOptions& options) : spec_(spec), options_(options) {
    root_ = fs::absolute(options.out).lexically_normal();
    record_file_ = root_ / "study.json";
    if (fs::exists(record_file_)) {
      record_ = parse_json(read_text_file(record_file_, "study record"), "study record", record_file_.string());
      if (!record_.is_object() || !record_.contains("format") || record_["format"] != kStudyFormat)
        throw Error("not a study record (expected \"format\": \"upcycle-study\")", record_file_.string());
    } else if (fs::exists(root_) && !fs::is_empty(root_) && !holds_only_dense_start(root_)) {
      throw Error("the study directory is not empty and holds no study.json; give a new --out", root_.string());
    }
    if (!spec_.dense.pretrains() && !checkpoint_flops(spec_.dense.checkpoint) && !spec_.dense.sunk_flops)
      throw Error("dense.checkpoint has no trainer_state.json, so its pretraining FLOPs are unknown: give "
                  "dense.sunk_flops (the x axis of the comparison is relative to it)",
                  spec_.file.string());
    check_study_flags(spec_);
    check_run_layout();
    fs::create_directories(root_);
    for (const auto& v : spec_.val) val_args_.push_back(v.string());
  }

  int run() {
    DenseStart dense = prepare_dense();
    record_["format"] = kStudyFormat;
    record_["version"] = 1;
    record_["name"] = spec_.name;
    record_["spec"] = spec_.file.string();
    record_["spec_sha256"] = sha256_file_hex(spec_.file, "study spec");
    record_["dense"] = dense.record;
    record_["extra_compute"] = spec_.extra_compute;
    record_["domains"] = domains();
    if (spec_.seeds.empty())
      record_.erase("seeds");
    else
      record_["seeds"] = spec_.seeds;
    if (!record_.contains("variants")) record_["variants"] = Json::array();
    save();
    for (size_t i = 0; i < spec_.variants.size(); ++i) {
      const VariantSpec& v = spec_.variants[i];
      const int code =
          run_variant(v, dense, "[" + std::to_string(i + 1) + "/" + std::to_string(spec_.variants.size()) + "] " + v.name);
      if (code != 0) {
        save();
        say("stopped in variant '" + v.name + "'; run the same `upcycle study` command again to resume");
        return code;
      }
    }
    if (options_.report) {
      const fs::path html = root_ / "report.html";
      const int code = run_report({root_.string(), "--out", html.string()});
      if (code != 0) return code;
    }
    say("done: " + root_.string());
    return 0;
  }

 private:
  Json domains() const {
    Json out = Json::array();
    for (const auto& v : spec_.val) {
      const Json ds = parse_json(read_text_file(v / "dataset.json", "dataset description"), "dataset description",
                                 (v / "dataset.json").string());
      out.push_back(ds.value("domain", v.filename().string()));
    }
    return out;
  }

  Args data_args() const {
    Args a{"--data"};
    a.insert(a.end(), spec_.data.begin(), spec_.data.end());
    a.push_back("--val");
    a.insert(a.end(), val_args_.begin(), val_args_.end());
    return a;
  }

  DenseStart prepare_dense() {
    DenseStart d;
    if (!spec_.dense.pretrains()) {
      d.checkpoint = spec_.dense.checkpoint;
      d.sunk_flops = spec_.dense.sunk_flops ? *spec_.dense.sunk_flops : *checkpoint_flops(d.checkpoint);
      d.record = {{"checkpoint", d.checkpoint.string()}, {"sunk_flops", d.sunk_flops}, {"pretrain_run", nullptr}};
      return d;
    }
    const fs::path init_dir = root_ / "models" / "dense-init";
    const fs::path run = root_ / "dense-pretrain";
    if (!fs::exists(init_dir / "config.json")) {
      say("initialising the dense model: " + relative_to(init_dir, root_));
      fs::create_directories(init_dir.parent_path());
      const int code = run_init(concat(study::flags_to_args(spec_.dense.init), {"--force", init_dir.string()}));
      if (code != 0) throw Error("upcycle init failed for dense.init", spec_.file.string());
    }
    if (!spec_.dense.tokenizer.empty()) copy_tokenizer(spec_.dense.tokenizer, init_dir);
    const int64_t steps = spec_.dense.pretrain_steps;
    const int64_t save_every = study::pretrain_save_interval(steps, spec_.dense.keep_steps);
    const Args args = concat(concat(concat({"--model", init_dir.string()}, data_args()),
                                    study::flags_to_args(study::merge_flags(spec_.train, spec_.pretrain))),
                             {"--out", run.string(), "--steps", std::to_string(steps), "--eval-every",
                              std::to_string(study::eval_interval(steps, spec_.evals)), "--save-every",
                              std::to_string(save_every), "--keep", std::to_string(steps / save_every + 1),
                              "--eval-at-start"});
    if (!run_finished(run, steps)) {
      say("pretraining the dense model for " + std::to_string(steps) + " steps: " + relative_to(run, root_));
      const int code = train_run(run, args, options_.threads);
      if (code != 0) return stop_dense(code);
    }
    for (const auto& entry : fs::directory_iterator(train::RunPaths{run}.checkpoints())) {
      const std::string name = entry.path().filename().string();
      if (!name.starts_with("step-") || !fs::exists(entry.path() / train::kTrainerStateFile)) continue;
      d.by_step[train::read_trainer_state(entry.path()).step] = entry.path();
    }
    if (!d.by_step.contains(steps)) throw Error("the dense pretraining run has no final checkpoint", run.string());
    d.checkpoint = d.by_step.at(steps);
    d.sunk_flops = train::read_trainer_state(d.checkpoint).flops;
    d.record = {{"checkpoint", relative_to(d.checkpoint, root_)},
                {"sunk_flops", d.sunk_flops},
                {"sunk_tokens", train::read_trainer_state(d.checkpoint).tokens},
                {"pretrain_run", relative_to(run, root_)},
                {"commands", Json::array({study::command_line("init", concat(study::flags_to_args(spec_.dense.init),
                                                                             {init_dir.string()})),
                                          study::command_line("train", args)})}};
    return d;
  }

  [[noreturn]] DenseStart stop_dense(int code) {
    say("dense pretraining stopped; run the same `upcycle study` command again to resume");
    throw StudyStopped{code};
  }

  void copy_tokenizer(const fs::path& tokenizer, const fs::path& model) {
    for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
      const fs::path from = name == std::string("tokenizer.json") ? tokenizer : tokenizer.parent_path() / name;
      if (!fs::exists(from) || fs::exists(model / name)) continue;
      write_text_file_atomically(model / name, "tokenizer file", read_text_file(from, "tokenizer file"));
    }
  }

  Json& variant_record(const std::string& name) {
    for (Json& v : record_["variants"])
      if (v.value("name", "") == name) return v;
    record_["variants"].push_back({{"name", name}});
    return record_["variants"].back();
  }

  // The record of one run: the variant's own without seeds, its runs[] entry for `seed` with them.
  Json& run_record(const std::string& name, std::optional<int64_t> seed) {
    Json& v = variant_record(name);
    if (!seed) return v;
    if (!v.contains("runs") || !v["runs"].is_array()) v["runs"] = Json::array();
    for (Json& r : v["runs"])
      if (r.value("seed", int64_t(0)) == *seed) return r;
    v["runs"].push_back({{"seed", *seed}});
    return v["runs"].back();
  }

  // A seeded variant is done when every seed's run is, pending until one has started.
  static std::string seeds_status(const Json& runs) {
    size_t done = 0, started = 0;
    for (const Json& r : runs) {
      const std::string status = r.value("status", "pending");
      done += status == "done";
      started += status != "pending";
    }
    return done == runs.size() ? "done" : started ? "running" : "pending";
  }

  void set_status(const VariantSpec& v, std::optional<int64_t> seed, const std::string& status) {
    run_record(v.name, seed)["status"] = status;
    if (seed) variant_record(v.name)["status"] = seeds_status(variant_record(v.name)["runs"]);
  }

  [[noreturn]] void changed(const VariantSpec& v, std::optional<int64_t> seed, const fs::path& run) const {
    throw Error("variant '" + v.name + "'" + (seed ? " (seed " + std::to_string(*seed) + ")" : "") +
                    " has changed since its run started (its convert/train commands differ from study.json); delete " +
                    run.string() + " to rerun it, or use a new --out",
                spec_.file.string());
  }

  // A study with seeds keeps its runs in runs/<v>/seed-<S>, one without in runs/<v> (likewise models/):
  // a directory of the other layout (seeds added to or removed from a study that has run) is refused
  // rather than mixed with the new runs. Likewise a learning-rate sweep's runs/<v>/lr-<lr>/ and a
  // single learning rate's runs/<v>/ (an `lr:` turned into a list, or back).
  void check_run_layout() const {
    for (const VariantSpec& v : spec_.variants)
      for (const char* top : {"runs", "models"}) {
        check_sweep_layout(v, root_ / top / (v.sweep.empty() ? v.name : v.sweep));
        const fs::path dir = root_ / top / v.name;
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) continue;
        const bool single = fs::exists(dir / "config.json");
        bool per_seed = false;
        for (const auto& entry : fs::directory_iterator(dir))
          per_seed = per_seed || entry.path().filename().string().starts_with("seed-");
        if (!spec_.seeds.empty() && single)
          throw Error("variant '" + v.name + "' was run without seeds (" + relative_to(dir, root_) +
                          "), but the spec lists seeds (runs/" + v.name + "/seed-S): delete runs/" + v.name +
                          " and models/" + v.name + " to rerun it, or use a new --out",
                      spec_.file.string());
        if (spec_.seeds.empty() && per_seed && !single)
          throw Error("variant '" + v.name + "' was run with seeds (" + relative_to(dir, root_) +
                          "/seed-*), but the spec lists none: give `seeds:` again, delete runs/" + v.name +
                          " and models/" + v.name + ", or use a new --out",
                      spec_.file.string());
      }
  }

  // `top` = runs/<name> or models/<name> of the spec's variant: with a sweep it may only hold lr-*
  // directories (and hidden staging files), without one none.
  void check_sweep_layout(const VariantSpec& v, const fs::path& top) const {
    std::error_code ec;
    if (!fs::is_directory(top, ec)) return;
    const std::string name = v.sweep.empty() ? v.name : v.sweep;
    for (const auto& entry : fs::directory_iterator(top)) {
      const std::string child = entry.path().filename().string();
      const bool sweep_dir = child.starts_with("lr-") && entry.is_directory();
      if (child.starts_with(".") || (v.sweep.empty() ? !sweep_dir : sweep_dir)) continue;  // hidden: staging files
      throw Error("variant '" + name + "' was run " + (v.sweep.empty() ? "as a learning-rate sweep (" : "with one learning rate (") +
                      relative_to(top, root_) + "), but the spec now " +
                      (v.sweep.empty() ? "gives one `lr:`" : "lists several (runs/" + name + "/lr-<lr>)") +
                      ": delete runs/" + name + " and models/" + name + " to rerun it, or use a new --out",
                  spec_.file.string());
    }
  }

  // The run's start model: the dense checkpoint itself, or models/<name>[/seed-<S>] converted from it
  // (again, when the spec changed the conversion of a run that has not started training).
  fs::path prepare_model(const VariantSpec& v, std::optional<int64_t> seed, const fs::path& start, const fs::path& run,
                         const Json& recorded, Json& commands) {
    const std::optional<Flags> convert = study::run_convert_flags(v, seed);
    if (!convert) return start;
    const fs::path model = root_ / study::model_dir(v.name, seed);
    const Args convert_args = concat({start.string(), model.string()}, study::flags_to_args(*convert));
    commands.push_back(study::command_line("convert", convert_args));
    if (!recorded.empty() && recorded[0] != commands[0]) {
      if (fs::exists(run)) changed(v, seed, run);
      fs::remove_all(model);
    }
    if (!fs::exists(model / "config.json")) {
      say(label_ + ": converting " + relative_to(start, root_) + " → " + relative_to(model, root_));
      fs::create_directories(model.parent_path());
      const Args thread_args = options_.threads > 0 ? Args{"--threads", std::to_string(options_.threads)} : Args{};
      const int code = run_convert(concat(concat(convert_args, {"--force"}), thread_args));
      if (code != 0) throw Error("upcycle convert failed for variant '" + v.name + "'", spec_.file.string());
    }
    return model;
  }

  // study.json's record of v once its run for `seed` is planned. Without seeds it is that run's record,
  // laid out as before seeds existed. With seeds the plan is the variant's (a seed changes no shape,
  // so every seed plans the same steps), `runs` holds each seed's run in the spec's order (model, run
  // directory, commands, status; a seed not reached yet only its run and "pending") and `commands`
  // all their commands.
  void record_run(const VariantSpec& v, std::optional<int64_t> seed, const Json& plan, const fs::path& model,
                  const fs::path& run, const Json& commands) {
    Json& rec = variant_record(v.name);
    Json r = {{"name", v.name}, {"kind", plan["kind"]}, {"description", v.description}};
    if (!v.sweep.empty()) {  // one learning rate of a sweep: the report groups the runs by "sweep"
      r["sweep"] = v.sweep;
      r["lr"] = std::stod(v.lr);
    }
    if (!seed) r["model"] = relative_to(model, root_);
    r["start"] = plan["start"];
    if (!seed) r["run"] = relative_to(run, root_);
    for (const char* key : {"sunk_flops", "budget_flops", "steps", "tokens_per_step", "train_flops_per_token"})
      r[key] = plan[key];
    if (!seed) {
      r["commands"] = commands;
      r["status"] = rec.value("status", "pending");
      rec = std::move(r);
      return;
    }
    Json runs = Json::array(), all = Json::array();
    for (const int64_t s : spec_.seeds) {
      Json entry = {{"seed", s}, {"run", study::run_dir(v.name, s)}, {"status", "pending"}};
      for (const Json& old : rec.value("runs", Json::array()))
        if (old.value("seed", int64_t(0)) == s) entry = old;
      if (s == *seed)
        entry = {{"seed", s}, {"model", relative_to(model, root_)}, {"run", relative_to(run, root_)},
                 {"commands", commands}, {"status", entry.value("status", "pending")}};
      for (const Json& c : entry.value("commands", Json::array()))
        if (std::find(all.begin(), all.end(), c) == all.end()) all.push_back(c);
      runs.push_back(std::move(entry));
    }
    r["seeds"] = spec_.seeds;
    r["commands"] = std::move(all);
    r["status"] = seeds_status(runs);
    r["runs"] = std::move(runs);
    rec = std::move(r);
  }

  int run_variant(const VariantSpec& v, const DenseStart& dense, const std::string& label) {
    const fs::path start = v.from ? dense_step(dense, *v.from) : dense.checkpoint;
    for (const std::optional<int64_t>& seed : study::run_seeds(spec_)) {
      label_ = label + (seed ? " seed " + std::to_string(*seed) : "");
      const int code = run_one(v, seed, start, dense);
      if (code != 0) return code;
    }
    return 0;
  }

  // One run of variant v: convert (unless it continues the dense model), plan, train, analyse.
  int run_one(const VariantSpec& v, std::optional<int64_t> seed, const fs::path& start, const DenseStart& dense) {
    const fs::path run = root_ / study::run_dir(v.name, seed);
    const Json recorded = run_record(v.name, seed).value("commands", Json::array());
    Json commands = Json::array();
    const fs::path model = prepare_model(v, seed, start, run, recorded, commands);
    // The plan: this variant's cost per step from its own model and flags.
    const Args base = concat(concat({"--model", model.string()}, data_args()),
                             study::flags_to_args(study::run_train_flags(spec_, v, seed)));
    const train::TrainOptions planned = parse_train_args(concat(base, {"--out", run.string()}));
    const ModelConfig config = read_model_config(model);
    const train::FlopsPerToken flops = train::run_flops_per_token(planned, config);
    const int64_t tokens_per_step = planned.micro_batch * planned.seq_len * planned.grad_accum;
    const double budget = v.extra_compute.value_or(spec_.extra_compute) * dense.sunk_flops;
    const int64_t steps = study::steps_for_budget(budget, flops.train, tokens_per_step);
    const int64_t every = study::eval_interval(steps, spec_.evals);
    const Args args = concat(base, {"--out", run.string(), "--steps", std::to_string(steps), "--eval-every",
                                    std::to_string(every), "--save-every", std::to_string(every), "--keep",
                                    std::to_string(steps / every + 2), "--eval-at-start"});
    commands.push_back(study::command_line("train", args));
    if (!recorded.empty() && recorded != commands && fs::exists(run)) changed(v, seed, run);

    const bool from_scratch = study::trains_from_scratch(v);
    const Json plan = {{"kind", config.is_moe() ? "moe" : "dense"},
                       {"start", start.string().starts_with(root_.string()) ? relative_to(start, root_) : start.string()},
                       {"sunk_flops", from_scratch ? 0.0 : checkpoint_flops(start).value_or(dense.sunk_flops)},
                       {"budget_flops", budget},
                       {"steps", steps},
                       {"tokens_per_step", tokens_per_step},
                       {"train_flops_per_token", flops.train}};
    record_run(v, seed, plan, model, run, commands);
    if (run_record(v.name, seed).value("status", "") == "done" && run_finished(run, steps) &&
        analysis_complete(run, model, config))
      return 0;
    say(label_ + ": " + std::to_string(steps) + " steps of " + std::to_string(tokens_per_step) + " tokens at " +
        format_number(flops.train) + " FLOPs/token = " + format_number(budget) + " FLOPs (" +
        format_number(100.0 * budget / dense.sunk_flops) + " % of the dense pretraining)");
    if (!run_finished(run, steps)) {
      set_status(v, seed, "running");
      save();
      fs::create_directories(run.parent_path());
      const int code = train_run(run, args, options_.threads);
      if (code != 0) return code;
    }
    if (config.is_moe()) analyze_run(run, model, start, planned.seq_len);
    set_status(v, seed, "done");
    save();
    return 0;
  }

  fs::path dense_step(const DenseStart& dense, int64_t step) const {
    auto it = dense.by_step.find(step);
    if (it == dense.by_step.end())
      throw Error("the dense pretraining has no checkpoint at step " + std::to_string(step), spec_.file.string());
    return it->second;
  }

  // Every checkpoint of the run (and the start model as step 0) → RUN/analysis/step-NNNNNNNN.json.
  std::vector<std::pair<int64_t, fs::path>> analysis_targets(const fs::path& run, const fs::path& model) const {
    std::vector<std::pair<int64_t, fs::path>> targets{{0, model}};
    const fs::path checkpoints = train::RunPaths{run}.checkpoints();
    if (fs::exists(checkpoints))
      for (const auto& entry : fs::directory_iterator(checkpoints)) {
        const std::string name = entry.path().filename().string();
        if (name.starts_with("step-") && fs::exists(entry.path() / train::kTrainerStateFile))
          targets.emplace_back(train::read_trainer_state(entry.path()).step, entry.path());
      }
    std::sort(targets.begin(), targets.end());
    return targets;
  }

  static fs::path analysis_file(const fs::path& run, int64_t step) {
    char name[32];
    std::snprintf(name, sizeof name, "step-%08lld.json", static_cast<long long>(step));
    return run / "analysis" / name;
  }

  bool analysis_complete(const fs::path& run, const fs::path& model, const ModelConfig& config) const {
    if (!config.is_moe()) return true;
    for (const auto& target : analysis_targets(run, model))
      if (!fs::exists(analysis_file(run, target.first))) return false;
    return true;
  }

  void analyze_run(const fs::path& run, const fs::path& model, const fs::path& dense, int64_t seq_len) {
    fs::create_directories(run / "analysis");
    const auto targets = analysis_targets(run, model);
    for (const auto& [step, checkpoint] : targets) {
      const fs::path file = analysis_file(run, step);
      if (fs::exists(file)) continue;
      analysis::AnalyzeOptions a;
      a.checkpoint = checkpoint;
      a.data = spec_.val;
      a.dense = dense;
      a.seq_len = seq_len;
      a.max_tokens = spec_.analysis_tokens;
      Json result = analysis::analyze_checkpoint(a, nullptr);
      if (step == 0) {  // the start model is the run's step 0, whatever state file it carries
        result["step"] = 0;
        result["flops"] = 0.0;
      }
      train::write_json_atomically(file, result);
    }
    say(relative_to(run, root_) + ": analysed " + std::to_string(targets.size()) + " checkpoints");
  }

  void save() { train::write_json_atomically(record_file_, record_); }

  const StudySpec& spec_;
  StudyRunOptions options_;
  fs::path root_, record_file_;
  Json record_ = Json::object();
  std::string label_;  // "[i/N] name[ seed S]" of the run in progress, for the progress lines
  Args val_args_;
};

}  // namespace

void check_study(const StudySpec& spec) { check_study_flags(spec); }

int run_study_spec(const StudySpec& spec, const StudyRunOptions& options) {
  StudyRunner runner(spec, options);
  try {
    return runner.run();
  } catch (const StudyRunner::StudyStopped& s) {
    return s.code;
  }
}

}  // namespace upcycle::cli
