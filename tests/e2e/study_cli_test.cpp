// `upcycle study` end to end on a tiny Llama and two synthetic domains: dense pretraining, dense
// continuation, an upcycled MoE, an MoE from scratch and an upcycle of an earlier dense checkpoint,
// each for its computed share of the same extra compute. Checks the plan against the run records
// (steps = round(budget / (FLOPs per token × tokens per step)), FLOPs spent within one step of the
// budget, sunk costs), the step-0 evaluations, the analysis of every MoE checkpoint (copied experts
// start identical), the report, that a second invocation retrains nothing, that a changed variant is
// refused, and that a study stopped by SIGTERM mid-run resumes to exactly the uninterrupted result.
// With `seeds:`, one run per variant and seed (runs/<v>/seed-<S>) and the report's means over seeds.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "core/json.h"
#include "support/child_process.h"
#include "support/test_support.h"
#include "support/train_test_support.h"

namespace upcycle {
namespace {

namespace fs = std::filesystem;

Json read_json(const fs::path& file) { return Json::parse(test::read_bytes(file)); }

std::vector<Json> read_records(const fs::path& metrics) {
  std::vector<Json> out;
  std::istringstream in(test::read_bytes(metrics));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(Json::parse(line));
  return out;
}

// Eval losses by (step, domain): what the interrupted and the straight study must agree on exactly.
std::map<std::pair<int64_t, std::string>, double> eval_losses(const fs::path& run) {
  std::map<std::pair<int64_t, std::string>, double> out;
  for (const Json& r : read_records(run / "metrics.jsonl"))
    if (r["kind"] == "eval") out[{r["step"].get<int64_t>(), r["domain"].get<std::string>()}] = r["loss"].get<double>();
  return out;
}

class StudyCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new test::ScratchDir();
    // The tiny preset's vocabulary is 512: two domains on disjoint id ranges with different periods.
    test::write_dataset(*data_ / "alpha", "alpha", test::cyclic_tokens(4000, 37, 0), test::cyclic_tokens(400, 37, 0), 512);
    test::write_dataset(*data_ / "beta", "beta", test::cyclic_tokens(4000, 53, 300), test::cyclic_tokens(400, 53, 300),
                        512);
  }
  static void TearDownTestSuite() { delete data_; }

  fs::path spec(const std::string& variant_extra = "") {
    const fs::path file = dir_ / "spec.yaml";
    test::write_bytes(file,
                      "name: tiny\n"
                      "data: [" + (*data_ / "alpha").string() + ", " + (*data_ / "beta").string() + "]\n"
                      "dense:\n"
                      "  init: {arch: llama, preset: tiny, dtype: f32, seed: 1}\n"
                      "  pretrain_steps: 12\n"
                      "  keep_steps: [6]\n"
                      "train: {micro-batch: 2, seq-len: 16, lr: 3e-3, warmup: 2, eval-tokens: 64, log-every: 100}\n"
                      "extra_compute: 0.5\n"
                      "evals: 3\n"
                      "analysis_tokens: 64\n"
                      "variants:\n"
                      "  - name: dense-continuation\n"
                      "  - name: upcycle\n"
                      "    convert: {experts: 4, top-k: 2, moe-layers: 'every:2:1'" + variant_extra + "}\n"
                      "  - name: scratch\n"
                      "    convert: {experts: 4, top-k: 2, from-scratch: true, seed: 3}\n"
                      "  - name: early\n"
                      "    from: 6\n"
                      "    convert: {experts: 4, top-k: 1}\n");
    return file;
  }
  std::vector<std::string> args(const fs::path& out) { return {"study", spec().string(), "--out", out.string(), "--threads", "1"}; }

  static test::ScratchDir* data_;
  test::ScratchDir dir_;
};
test::ScratchDir* StudyCli::data_ = nullptr;

TEST_F(StudyCli, RunsEveryVariantAtEqualComputeAndResumes) {
  const fs::path out = dir_ / "study";
  const test::RunResult r = test::run_upcycle(args(out));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("study: pretraining the dense model for 12 steps"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("study: [2/4] upcycle: converting"), std::string::npos) << r.out;

  const Json study = read_json(out / "study.json");
  EXPECT_EQ(study["format"], "upcycle-study");
  EXPECT_EQ(study["domains"], Json::array({"alpha", "beta"}));
  const fs::path dense_final = out / "dense-pretrain" / "checkpoints" / "step-00000012";
  const double sunk = read_json(dense_final / "trainer_state.json")["flops"].get<double>();
  EXPECT_EQ(study["dense"]["checkpoint"], "dense-pretrain/checkpoints/step-00000012");
  EXPECT_DOUBLE_EQ(study["dense"]["sunk_flops"].get<double>(), sunk);
  const double early_sunk =
      read_json(out / "dense-pretrain" / "checkpoints" / "step-00000006" / "trainer_state.json")["flops"].get<double>();

  ASSERT_EQ(study["variants"].size(), 4u);
  for (const Json& v : study["variants"]) {
    const std::string name = v["name"];
    SCOPED_TRACE(name);
    EXPECT_EQ(v["status"], "done");
    const fs::path run = out / v["run"].get<std::string>();
    const Json record = read_json(run / "config.json");
    const double per_token = record["flops_per_token"]["train"].get<double>();
    const int64_t tokens_per_step = record["tokens_per_step"].get<int64_t>();
    EXPECT_EQ(tokens_per_step, 32);
    const double budget = 0.5 * sunk;
    EXPECT_DOUBLE_EQ(v["budget_flops"].get<double>(), budget);
    const int64_t steps = std::max<int64_t>(1, std::llround(budget / (per_token * tokens_per_step)));
    EXPECT_EQ(v["steps"].get<int64_t>(), steps);
    const fs::path last = run / "checkpoints" / ("step-" + std::string(8 - std::to_string(steps).size(), '0') +
                                                 std::to_string(steps));
    const double spent = read_json(last / "trainer_state.json")["flops"].get<double>();
    EXPECT_LE(std::abs(spent - budget), per_token * tokens_per_step / 2 + 1) << "within half a step of the budget";
    EXPECT_EQ(v["sunk_flops"].get<double>(), name == "scratch" ? 0.0 : name == "early" ? early_sunk : sunk);
    EXPECT_EQ(v["kind"], name == "dense-continuation" ? "dense" : "moe");
    // Every run is evaluated before its first step, per domain.
    const auto losses = eval_losses(run);
    EXPECT_TRUE(losses.contains({0, "alpha"}) && losses.contains({0, "beta"}));
    EXPECT_TRUE(losses.contains({steps, "alpha"}));
    if (v["kind"] == "moe") {
      // Analysed at the start (step 0) and at every checkpoint.
      for (const auto& e : fs::directory_iterator(run / "checkpoints")) {
        const std::string step = e.path().filename().string().substr(5);
        EXPECT_TRUE(fs::exists(run / "analysis" / ("step-" + step + ".json"))) << step;
      }
      const Json start = read_json(run / "analysis" / "step-00000000.json");
      EXPECT_EQ(start["step"], 0);
      ASSERT_FALSE(start["layers"].empty());
      if (name == "upcycle") {  // copied experts are identical at the start
        EXPECT_NEAR(start["summary"]["expert_similarity_mean"].get<double>(), 1.0, 1e-6);
      }
      if (name == "scratch") {
        EXPECT_LT(start["summary"]["expert_similarity_mean"].get<double>(), 0.5);
      }
    }
  }
  EXPECT_TRUE(fs::exists(out / "report.html"));

  // A second invocation finds everything done: nothing is converted, trained or rewritten.
  const std::string metrics_before = test::read_bytes(out / "runs" / "upcycle" / "metrics.jsonl");
  const test::RunResult again = test::run_upcycle(args(out));
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_EQ(again.out.find("upcycle: converting"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find("study: pretraining"), std::string::npos) << again.out;
  EXPECT_EQ(test::read_bytes(out / "runs" / "upcycle" / "metrics.jsonl"), metrics_before);

  // Editing a variant that already ran is refused, naming it.
  spec(", seed: 9");
  const test::RunResult changed = test::run_upcycle({"study", (dir_ / "spec.yaml").string(), "--out", out.string(),
                                                     "--threads", "1"});
  EXPECT_EQ(changed.exit_code, 2);
  EXPECT_NE(changed.err.find("variant 'upcycle' has changed"), std::string::npos) << changed.err;

  // Stopped by SIGTERM in the middle of the dense-continuation run (its step-2 checkpoint), then run
  // again: the same evaluations, loss for loss, as the straight study.
  const fs::path interrupted = dir_ / "interrupted";
  test::Child child(args(interrupted), {"UPCYCLE_TEST_CHECKPOINT_PAUSE=2"});
  ASSERT_TRUE(test::wait_for_entry(interrupted / "runs" / "dense-continuation" / "checkpoints", ".step-00000002"));
  child.signal(SIGTERM);
  const test::RunResult stopped = child.wait();
  EXPECT_EQ(stopped.exit_code, 143) << stopped.out << stopped.err;
  EXPECT_NE(stopped.out.find("run the same `upcycle study` command again"), std::string::npos) << stopped.out;
  EXPECT_EQ(read_json(interrupted / "study.json")["variants"][0]["status"], "running");
  const test::RunResult resumed = test::run_upcycle(args(interrupted));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  for (const char* v : {"dense-continuation", "upcycle", "scratch", "early"}) {
    SCOPED_TRACE(v);
    EXPECT_EQ(eval_losses(interrupted / "runs" / v), eval_losses(out / "runs" / v));
  }
}

size_t count_occurrences(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

// The mean over seeds of a run family's final mean validation loss, as `report` prints it: each seed
// run's evaluations at its last step averaged over the domains, then averaged over the seeds.
double mean_final_over_seeds(const std::vector<fs::path>& runs) {
  double sum = 0;
  for (const fs::path& run : runs) {
    const auto losses = eval_losses(run);
    const int64_t last = losses.rbegin()->first.first;
    double domains = 0, n = 0;
    for (const auto& [key, loss] : losses)
      if (key.first == last) domains += loss, ++n;
    sum += domains / n;
  }
  return sum / double(runs.size());
}

// `seeds: [1, 2]`: every variant once per seed in runs/<v>/seed-<S>, the seed passed to train and to
// convert unless the variant fixes its convert seed, the dense pretraining shared, the report's
// means over seeds, and resuming and layout changes as for one seed.
TEST_F(StudyCli, TrainsEveryVariantOncePerSeed) {
  const fs::path file = dir_ / "seeds.yaml";
  const auto write_spec = [&](const std::string& seeds) {
    test::write_bytes(file, "name: seeds\n"
                            "data: [" + (*data_ / "alpha").string() + ", " + (*data_ / "beta").string() + "]\n"
                            "dense: {init: {arch: llama, preset: tiny, dtype: f32, seed: 1}, pretrain_steps: 12}\n"
                            "train: {micro-batch: 2, seq-len: 16, lr: 3e-3, warmup: 2, eval-tokens: 64, log-every: 100}\n"
                            "extra_compute: 0.5\nevals: 2\nanalysis_tokens: 64\n" + seeds +
                            "variants:\n"
                            "  - name: dense-continuation\n"
                            "  - name: upcycle\n"
                            "    convert: {experts: 4, top-k: 2, moe-layers: 'every:2:1'}\n"
                            "  - name: scratch\n"
                            "    convert: {experts: 4, top-k: 2, from-scratch: true, seed: 3}\n");
  };
  write_spec("seeds: [1, 2]\n");
  const test::RunResult check = test::run_upcycle({"study", file.string(), "--check"});
  ASSERT_EQ(check.exit_code, 0) << check.err;
  EXPECT_NE(check.out.find("seeds: 1 2 (6 runs)\n"), std::string::npos) << check.out;
  EXPECT_NE(check.out.find("only the data order varies): scratch\n"), std::string::npos) << check.out;

  const fs::path out = dir_ / "seeded";
  const std::vector<std::string> args = {"study", file.string(), "--out", out.string(), "--threads", "1"};
  const test::RunResult r = test::run_upcycle(args);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(count_occurrences(r.out, "study: pretraining the dense model"), 1u) << "one dense model for every seed";
  EXPECT_NE(r.out.find("study: [2/3] upcycle seed 2: converting"), std::string::npos) << r.out;

  const Json study = read_json(out / "study.json");
  EXPECT_EQ(study["seeds"], Json::array({1, 2}));
  for (const Json& v : study["variants"]) {
    const std::string name = v["name"];
    SCOPED_TRACE(name);
    EXPECT_EQ(v["status"], "done");
    EXPECT_FALSE(v.contains("run")) << "with seeds the runs are in runs[]";
    ASSERT_EQ(v["runs"].size(), 2u);
    for (const Json& run : v["runs"]) {
      const int64_t seed = run["seed"];
      const std::string s = std::to_string(seed);
      EXPECT_EQ(run["run"], "runs/" + name + "/seed-" + s);
      EXPECT_EQ(run["status"], "done");
      const std::string train = run["commands"].back();
      EXPECT_NE(train.find(" --seed " + s + " "), std::string::npos) << train;
      EXPECT_TRUE(fs::exists(out / run["run"].get<std::string>() / "config.json"));
      if (name == "dense-continuation") continue;
      EXPECT_EQ(run["model"], "models/" + name + "/seed-" + s);
      const std::string convert = run["commands"][0];
      EXPECT_TRUE(convert.ends_with(name == "scratch" ? "--seed 3" : "--seed " + s)) << convert;  // a fixed seed is kept
      EXPECT_TRUE(fs::exists(out / run["run"].get<std::string>() / "analysis" / "step-00000000.json"));
    }
    EXPECT_EQ(v["commands"].size(), name == "dense-continuation" ? 2u : 4u);  // every seed's commands
  }
  // The study seed changes upcycle's router init; scratch's fixed convert seed gives the same model twice.
  const auto weights = [&](const std::string& model) { return test::read_bytes(out / "models" / model / "model.safetensors"); };
  EXPECT_NE(weights("upcycle/seed-1"), weights("upcycle/seed-2"));
  EXPECT_EQ(weights("scratch/seed-1"), weights("scratch/seed-2"));
  // Same start, another data order: equal at step 0, different after training.
  const auto dense1 = eval_losses(out / "runs/dense-continuation/seed-1"), dense2 = eval_losses(out / "runs/dense-continuation/seed-2");
  EXPECT_EQ(dense1.begin()->second, dense2.begin()->second);
  EXPECT_NE(dense1.rbegin()->second, dense2.rbegin()->second);
  // The report (printed at the end of the study): the mean over both seeds, and the spread table.
  char mean[16];
  std::snprintf(mean, sizeof mean, "%.4f",
                mean_final_over_seeds({out / "runs/dense-continuation/seed-1", out / "runs/dense-continuation/seed-2"}));
  const size_t row = r.out.find("\ndense-continuation  done");
  ASSERT_NE(row, std::string::npos) << r.out;
  EXPECT_NE(r.out.substr(row, r.out.find('\n', row + 1) - row).find(mean), std::string::npos) << mean << "\n" << r.out;
  EXPECT_NE(r.out.find("Over seeds:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("; paired by seed (same data order) the difference is "), std::string::npos) << r.out;

  // Run again: every seed's run is done, nothing is converted or trained.
  const std::string metrics = test::read_bytes(out / "runs/upcycle/seed-2/metrics.jsonl");
  const test::RunResult again = test::run_upcycle(args);
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_EQ(again.out.find("converting"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find(" steps of "), std::string::npos) << again.out;
  EXPECT_EQ(test::read_bytes(out / "runs/upcycle/seed-2/metrics.jsonl"), metrics);
  // Adding a seed trains only the new seed's runs.
  write_spec("seeds: [1, 2, 5]\n");
  const test::RunResult more = test::run_upcycle(args);
  ASSERT_EQ(more.exit_code, 0) << more.out << more.err;
  EXPECT_EQ(count_occurrences(more.out, " steps of "), 3u) << more.out;
  EXPECT_NE(more.out.find("[1/3] dense-continuation seed 5: "), std::string::npos) << more.out;
  EXPECT_EQ(test::read_bytes(out / "runs/upcycle/seed-2/metrics.jsonl"), metrics);
  // The same directory without seeds would mix layouts: refused, naming the variant.
  write_spec("");
  const test::RunResult unseeded = test::run_upcycle(args);
  EXPECT_EQ(unseeded.exit_code, 2);
  EXPECT_NE(unseeded.err.find("variant 'dense-continuation' was run with seeds"), std::string::npos) << unseeded.err;
}

TEST_F(StudyCli, RefusesAMisspeltFlagBeforeTrainingAnything) {
  const fs::path file = spec();
  test::write_bytes(file, test::read_bytes(file) + "  - name: typo\n    convert: {expertz: 4}\n");
  const test::RunResult r = test::run_upcycle({"study", file.string(), "--out", (dir_ / "o").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("variants.typo.convert: unknown option '--expertz'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "o")) << "nothing written";
  test::write_bytes(file, test::read_bytes(spec()) + "  - name: bad-lr\n    train: {lr: fast}\n");
  const test::RunResult bad = test::run_upcycle({"study", file.string(), "--out", (dir_ / "o").string()});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("variants.bad-lr.train: "), std::string::npos) << bad.err;
}

// The specs shipped in experiments/ must stay valid: each is copied into a scratch tree where the
// paths it names exist, and `study --check` parses it and every command's flags.
TEST_F(StudyCli, ShippedSpecsPassTheCheck) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(UPCYCLE_EXPERIMENTS_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    const fs::path root = dir_ / entry.path().stem() / "experiments";
    fs::create_directories(root);
    const fs::path copy = root / entry.path().filename();
    fs::copy_file(entry.path(), copy);
    const YAML::Node spec = YAML::LoadFile(copy.string());
    for (const char* key : {"data", "val"})
      if (spec[key])
        for (const auto& item : spec[key]) {
          std::string path = item.as<std::string>();
          if (const auto colon = path.rfind(':'); colon != std::string::npos) path.resize(colon);  // DIR:WEIGHT
          fs::create_directories(root / path);
        }
    if (spec["dense"]["checkpoint"]) fs::create_directories(root / spec["dense"]["checkpoint"].as<std::string>());
    if (spec["dense"]["tokenizer"]) {
      const fs::path tokenizer = root / spec["dense"]["tokenizer"].as<std::string>();
      fs::create_directories(tokenizer.parent_path());
      test::write_bytes(tokenizer, "{}");
    }
    const test::RunResult r = test::run_upcycle({"study", copy.string(), "--check"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find(": ok, " + std::to_string(spec["variants"].size()) + " variants"), std::string::npos) << r.out;
    ++checked;
  }
  EXPECT_GE(checked, 4);  // demo, core, ablations, smollm2
}

TEST_F(StudyCli, RefusesAGivenCheckpointWithoutItsSunkCost) {
  const fs::path dense = dir_ / "dense";
  ASSERT_EQ(test::run_upcycle({"init", "--arch", "llama", "--preset", "tiny", dense.string()}).exit_code, 0);
  test::write_bytes(dir_ / "given.yaml", "data: [" + (*data_ / "alpha").string() + "]\ndense: {checkpoint: " +
                                             dense.string() + "}\nvariants: [{name: d}]\n");
  const test::RunResult r = test::run_upcycle({"study", (dir_ / "given.yaml").string(), "--out", (dir_ / "o").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("give dense.sunk_flops"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "o")) << "nothing is written before the spec is known to be runnable";
}

}  // namespace
}  // namespace upcycle
