// `upcycle study` with a learning-rate sweep end to end (docs/study.md, "Learning-rate sweeps"): a
// tiny Llama, dense continuation at one lr and an upcycled MoE at two, one seed. Checks the runs'
// directories and --lr flags, study.json's sweep records, that the report compares the MoE at the lr
// whose final mean validation loss (read here from metrics.jsonl) is lower, the sweep table and the
// per-token view, that a rerun trains nothing, and that turning the sweep back into one lr is refused.
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>

#include "core/json.h"
#include "support/test_support.h"
#include "support/train_test_support.h"

namespace upcycle {
namespace {

namespace fs = std::filesystem;

// The mean over domains of a run's evaluations at its last evaluated step, from metrics.jsonl.
double final_mean_loss(const fs::path& run) {
  std::istringstream in(test::read_bytes(run / "metrics.jsonl"));
  int64_t last = -1;
  double sum = 0, n = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const Json r = Json::parse(line);
    if (r["kind"] != "eval") continue;
    if (r["step"].get<int64_t>() > last) last = r["step"].get<int64_t>(), sum = 0, n = 0;
    sum += r["loss"].get<double>(), ++n;
  }
  return sum / n;
}

TEST(StudyLrSweepCli, SweepsComparesAtTheBestLrAndResumes) {
  test::ScratchDir dir;
  test::write_dataset(dir / "alpha", "alpha", test::cyclic_tokens(4000, 37, 0), test::cyclic_tokens(400, 37, 0), 512);
  test::write_dataset(dir / "beta", "beta", test::cyclic_tokens(4000, 53, 300), test::cyclic_tokens(400, 53, 300), 512);
  const fs::path file = dir / "sweep.yaml";
  const auto write_spec = [&](const std::string& upcycle_lr, const std::string& seeds = "seeds: [1]\n") {
    test::write_bytes(file, "name: sweep\n"
                            "data: [" + (dir / "alpha").string() + ", " + (dir / "beta").string() + "]\n"
                            "dense: {init: {arch: llama, preset: tiny, dtype: f32, seed: 1}, pretrain_steps: 12}\n"
                            "train: {micro-batch: 2, seq-len: 16, lr: 3e-3, warmup: 2, eval-tokens: 64, log-every: 100}\n"
                            "extra_compute: 0.5\nevals: 2\nanalysis_tokens: 64\n" + seeds +
                            "variants:\n"
                            "  - name: dense-continuation\n"
                            "  - name: upcycle\n"
                            "    convert: {experts: 4, top-k: 2, moe-layers: 'every:2:1'}\n"
                            "    train: {lr: " + upcycle_lr + "}\n");
  };
  write_spec("[1e-3, 1e-2]");
  const test::RunResult check = test::run_upcycle({"study", file.string(), "--check"});
  ASSERT_EQ(check.exit_code, 0) << check.err;
  EXPECT_NE(check.out.find(": ok, 2 variants: dense-continuation upcycle (lr 0.001, 0.01)\n"), std::string::npos) << check.out;
  EXPECT_NE(check.out.find("seeds: 1 (3 runs)\n"), std::string::npos) << check.out;

  const fs::path out = dir / "study";
  const std::vector<std::string> args = {"study", file.string(), "--out", out.string(), "--threads", "1"};
  const test::RunResult r = test::run_upcycle(args);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("study: [3/3] upcycle/lr-0.01 seed 1: converting"), std::string::npos) << r.out;

  const Json study = Json::parse(test::read_bytes(out / "study.json"));
  ASSERT_EQ(study["variants"].size(), 3u);
  EXPECT_FALSE(study["variants"][0].contains("sweep"));
  for (const auto& [i, lr] : {std::pair<size_t, const char*>{1, "0.001"}, {2, "0.01"}}) {
    const Json& v = study["variants"][i];
    SCOPED_TRACE(lr);
    EXPECT_EQ(v["name"], std::string("upcycle/lr-") + lr);
    EXPECT_EQ(v["sweep"], "upcycle");
    EXPECT_DOUBLE_EQ(v["lr"].get<double>(), std::stod(lr));
    EXPECT_EQ(v["status"], "done");
    EXPECT_EQ(v["runs"][0]["run"], std::string("runs/upcycle/lr-") + lr + "/seed-1");
    EXPECT_EQ(v["runs"][0]["model"], std::string("models/upcycle/lr-") + lr + "/seed-1");
    const std::string train = v["runs"][0]["commands"][1];
    EXPECT_NE(train.find(std::string(" --lr ") + lr + " "), std::string::npos) << train;
    EXPECT_TRUE(fs::exists(out / "runs/upcycle" / (std::string("lr-") + lr) / "seed-1/analysis/step-00000000.json"));
  }
  // The chosen lr: the lower final mean validation loss (one seed: the run's own).
  const double low = final_mean_loss(out / "runs/upcycle/lr-0.001/seed-1"), high = final_mean_loss(out / "runs/upcycle/lr-0.01/seed-1");
  ASSERT_NE(low, high);
  const std::string best = low < high ? "0.001" : "0.01", other = low < high ? "0.01" : "0.001";
  char loss[16], dense[16];
  std::snprintf(loss, sizeof loss, "%.4f", std::min(low, high));
  std::snprintf(dense, sizeof dense, "%.4f", final_mean_loss(out / "runs/dense-continuation/seed-1"));
  // The summary's upcycle row is the chosen run's, and the sweep table marks it.
  const size_t row = r.out.find("\nupcycle ");
  ASSERT_NE(row, std::string::npos) << r.out;
  EXPECT_NE(r.out.substr(row, r.out.find('\n', row + 1) - row).find(loss), std::string::npos) << loss << "\n" << r.out;
  EXPECT_NE(r.out.find("Learning-rate sweeps"), std::string::npos) << r.out;
  const size_t chosen = r.out.find("upcycle  " + std::string(best.size() < other.size() ? " " : "") + best);
  ASSERT_NE(chosen, std::string::npos) << r.out;
  EXPECT_NE(r.out.substr(chosen, r.out.find('\n', chosen) - chosen).find("chosen"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Per token and per FLOP, against dense-continuation:\n  upcycle "), std::string::npos) << r.out;
  const std::string html = test::read_bytes(out / "report.html");
  for (const char* id : {"id=\"plot-lr-sweep\"", "id=\"table-lr-sweep\"", "id=\"table-token-view\"", "id=\"token-view-finding\""})
    EXPECT_NE(html.find(id), std::string::npos) << id;
  EXPECT_NE(html.find("at lr " + best + ", the best of its learning-rate sweep"), std::string::npos);
  EXPECT_NE(html.find(dense), std::string::npos) << "the baseline's final loss is on the page";

  // Run again: nothing is converted or trained.
  const std::string metrics = test::read_bytes(out / "runs/upcycle/lr-0.01/seed-1/metrics.jsonl");
  const test::RunResult again = test::run_upcycle(args);
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_EQ(again.out.find("converting"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find(" steps of "), std::string::npos) << again.out;
  EXPECT_EQ(test::read_bytes(out / "runs/upcycle/lr-0.01/seed-1/metrics.jsonl"), metrics);
  // One lr again in the same directory would mix the layouts: refused, naming the variant.
  write_spec("1e-3");
  const test::RunResult single = test::run_upcycle(args);
  EXPECT_EQ(single.exit_code, 2);
  EXPECT_NE(single.err.find("variant 'upcycle' was run as a learning-rate sweep (runs/upcycle)"), std::string::npos) << single.err;
  EXPECT_EQ(single.err.find('\n'), single.err.size() - 1) << "one line";

  // Without seeds: runs/upcycle/lr-<lr> is the run directory itself, and the report reads it alike.
  write_spec("[1e-3, 1e-2]", "");
  const fs::path plain = dir / "plain";
  const test::RunResult p = test::run_upcycle({"study", file.string(), "--out", plain.string(), "--threads", "1"});
  ASSERT_EQ(p.exit_code, 0) << p.out << p.err;
  const Json plain_study = Json::parse(test::read_bytes(plain / "study.json"));
  EXPECT_EQ(plain_study["variants"][1]["run"], "runs/upcycle/lr-0.001");
  EXPECT_EQ(plain_study["variants"][2]["model"], "models/upcycle/lr-0.01");
  EXPECT_TRUE(fs::exists(plain / "runs/upcycle/lr-0.01/config.json"));
  EXPECT_NE(p.out.find("Learning-rate sweeps"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("chosen"), std::string::npos) << p.out;
}

}  // namespace
}  // namespace upcycle
