// `upcycle train` as a user runs it, on tiny dense and MoE models written in the test:
// resume exactness (20 steps straight = 10 with --stop-after + 10 with --resume: identical weights,
// optimizer and trainer state bytes, identical metrics records except tokens_per_s; the MoE runs add
// jitter, expert bias, z-loss and a Dirichlet prior whose gradient stops after step 12; a two-domain run
// adds a per-domain prior), a SIGKILL during
// a checkpoint write and a SIGTERM mid-run (both resume to the straight run's weights), non-finite
// steps (skipped, counted, N in a row → exit 2 naming the intact checkpoint), token ids ≥ vocab, a
// non-empty run directory, a full disk during a checkpoint, resume flag rules, and every checkpoint
// loading in `inspect` and `eval` (eval's loss equal to the one the trainer logged).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/json.h"
#include "core/rng.h"
#include "support/test_support.h"
#include "support/child_process.h"
#include "support/train_run_support.h"
#include "support/train_test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;


using test::ckpt;
using test::read_records;
using test::with;

class TrainCli : public ::testing::Test {
 protected:
  // Shared by every test: the models, the data and the two straight 20-step runs.
  static void SetUpTestSuite() {
    dir_ = new test::ScratchDir;
    test::write_train_inputs(dir_->path());
    for (bool moe : {false, true}) {
      auto r = test::run_upcycle(args(moe, straight(moe)));
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path straight(bool moe) { return *dir_ / (moe ? "straight-moe" : "straight-dense"); }
  static std::vector<std::string> args(bool moe, const fs::path& out, const std::string& steps = "20") {
    std::vector<std::string> a = {"train", "--model", (*dir_ / (moe ? "moe" : "dense")).string(), "--data",
                                  (*dir_ / "data").string(), "--val", (*dir_ / "data").string(), "--out", out.string(),
                                  "--steps", steps, "--micro-batch", "2", "--seq-len", "8", "--lr", "1e-2",
                                  "--warmup", "3", "--save-every", "5", "--eval-every", "5", "--eval-tokens", "32",
                                  "--threads", "1"};
    if (moe)
      for (const std::string& s : test::moe_resume_flags()) a.push_back(s);
    return a;
  }
  static std::vector<std::string> resume(const fs::path& out, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"train", "--out", out.string(), "--resume"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  // The resumed run equals the straight one: checkpoint files byte for byte, metrics record for record.
  static void expect_same_as_straight(const fs::path& run, bool moe) { expect_same_runs(straight(moe), run); }
  static void expect_same_runs(const fs::path& a, const fs::path& b) { test::expect_same_runs(a, b, 20); }
  static test::ScratchDir* dir_;
};
test::ScratchDir* TrainCli::dir_ = nullptr;

TEST_F(TrainCli, TenStepsPlusResumeTenEqualTwentyDenseAndMoe) {
  for (bool moe : {false, true}) {
    SCOPED_TRACE(moe ? "moe" : "dense");
    const fs::path run = *dir_ / (moe ? "split-moe" : "split-dense");
    auto r = test::run_upcycle(with(args(moe, run), "--stop-after", "10"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("stopped by --stop-after at step 10 of 20"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("resume with: upcycle train --out " + run.string() + " --resume"), std::string::npos);
    EXPECT_FALSE(fs::exists(ckpt(run, 20)));
    r = test::run_upcycle(resume(run));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_same_as_straight(run, moe);
    // Train records 1..20 once each, losses falling; the checkpoints kept are the last 3 (--keep 3).
    const auto train = read_records(run, "train");
    ASSERT_EQ(train.size(), 20u);
    for (size_t i = 0; i < train.size(); ++i) EXPECT_EQ(train[i]["step"], i + 1);
    EXPECT_LT(train.back()["loss"].get<double>(), train.front()["loss"].get<double>());
    EXPECT_EQ(train.back()["tokens"], 20 * 2 * 8);
    EXPECT_FALSE(fs::exists(ckpt(run, 5)));
    for (int s : {10, 15, 20}) EXPECT_TRUE(fs::exists(ckpt(run, s))) << s;
    if (moe) {
      ASSERT_TRUE(train.back().contains("moe"));
      EXPECT_EQ(train.back()["moe"].size(), 2u);
      EXPECT_EQ(train.back()["moe"][0]["load"].size(), 4u);
      EXPECT_GT(train.back()["dirichlet"].get<double>(), 0.0);  // still measured after --dirichlet-steps
      EXPECT_TRUE(train.back()["moe"][0].contains("dirichlet"));
      const Json state = Json::parse(test::read_bytes(fs::path(ckpt(run, 20)) / "trainer_state.json"));
      EXPECT_EQ(state["expert_bias"].size(), 2u);  // both MoE layers carry a bias, saved and restored
    }
    EXPECT_EQ(test::read_bytes(fs::path(ckpt(run, 20)) / "tokenizer.json"),
              test::read_bytes(*dir_ / "dense" / "tokenizer.json"));
  }
}

// A per-domain Dirichlet prior (two domains, one DOMAIN=α1,…,αE each) resumes exactly too: the tokens'
// domains come from the restored mixture position. A domain the mixture lacks is exit 2, naming the
// mixture's domains, before the run directory is touched.
TEST_F(TrainCli, PerDomainDirichletPriorResumesExactly) {
  std::vector<uint32_t> code(2000);
  for (size_t i = 0; i < code.size(); ++i) code[i] = uint32_t(CounterRng(5, "code").bits(i) % 11);
  test::write_dataset(*dir_ / "code", "code", code, {}, 11);
  // args() trains on "web" alone with a plain prior: add "code" to the mixture and give each domain a prior
  // (its --dirichlet-steps 12 stays: the switch mid-run is part of what must resume exactly).
  auto mixture = [&](const fs::path& out) {
    std::vector<std::string> a = args(true, out);
    a.erase(std::find(a.begin(), a.end(), "--dirichlet-prior"), std::find(a.begin(), a.end(), "--dirichlet-steps"));
    a.insert(std::find(a.begin(), a.end(), "--data") + 2, (*dir_ / "code").string() + ":0.5");
    a.insert(a.end(), {"--dirichlet-prior", "web=2,2,0.5,0.5", "--dirichlet-prior", "code=0.5,0.5,2,2",
                       "--dirichlet-coef", "0.05"});
    return a;
  };
  const fs::path full = *dir_ / "domains-straight", split = *dir_ / "domains-split";
  auto r = test::run_upcycle(mixture(full));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json record = Json::parse(test::read_bytes(full / "config.json"));
  EXPECT_EQ(record["routing"]["dirichlet_domain_alpha"]["code"], Json::array({0.5, 0.5, 2, 2})) << record.dump();
  EXPECT_GT(read_records(full, "train").back()["dirichlet"].get<double>(), 0.0);
  r = test::run_upcycle(with(mixture(split), "--stop-after", "10"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_upcycle(resume(split));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_runs(full, split);

  const fs::path bad = *dir_ / "domains-bad";
  std::vector<std::string> a = mixture(bad);
  *std::find(a.begin(), a.end(), "code=0.5,0.5,2,2") = "math=0.5,0.5,2,2";
  r = test::run_upcycle(a);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--dirichlet-prior math=0.5,0.5,2,2: no domain 'math' in the --data mixture (its domains: "
                       "web, code)"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(bad));
}

TEST_F(TrainCli, SigkillDuringACheckpointWriteResumesFromThePreviousOne) {
  const fs::path run = *dir_ / "killed";
  test::Child child(args(false, run), {"UPCYCLE_TEST_CHECKPOINT_PAUSE=10"});
  ASSERT_TRUE(test::wait_for_entry(run / "checkpoints", ".step-00000010"));
  child.signal(SIGKILL);
  EXPECT_EQ(child.wait().exit_code, 128 + SIGKILL);
  EXPECT_TRUE(fs::exists(ckpt(run, 5)));
  EXPECT_FALSE(fs::exists(ckpt(run, 10)));
  auto r = test::run_upcycle(resume(run));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("from " + ckpt(run, 5)), std::string::npos) << r.out;
  for (const auto& e : fs::directory_iterator(run / "checkpoints"))
    EXPECT_FALSE(e.path().filename().string().starts_with(".")) << e.path();  // the staging leftover is gone
  expect_same_as_straight(run, false);
}

TEST_F(TrainCli, SigtermFinishesTheStepWritesACheckpointAndResumes) {
  const fs::path run = *dir_ / "terminated";
  test::Child child(args(true, run), {"UPCYCLE_TEST_CHECKPOINT_PAUSE=10"});
  ASSERT_TRUE(test::wait_for_entry(run / "checkpoints", ".step-00000010"));
  child.signal(SIGTERM);  // arrives while step 10's checkpoint is being written: step 11 finishes, then stop
  auto r = child.wait();
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.err;
  EXPECT_NE(r.out.find("stopped by SIGTERM at step 11 of 20"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(ckpt(run, 10)));
  EXPECT_TRUE(fs::exists(ckpt(run, 11)));
  r = test::run_upcycle(resume(run));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_as_straight(run, true);
}

TEST_F(TrainCli, NonFiniteStepsAreSkippedThenStopWithTheLastCheckpointIntact) {
  const fs::path run = *dir_ / "nan";
  test::Child child(with(with(args(false, run), "--max-nonfinite", "3"), "--save-every", "2"),
              {"UPCYCLE_TEST_NAN_STEPS=3,6,7,8"});
  auto r = child.wait();
  EXPECT_EQ(r.exit_code, 2);
  // Each skipped step is noted on stderr; the last line is the one-line error.
  EXPECT_NE(r.err.find("step 3 skipped: loss "), std::string::npos) << r.err;
  const std::string last = r.err.substr(r.err.rfind('\n', r.err.size() - 2) + 1);
  EXPECT_EQ(last.rfind("upcycle: error: 3 non-finite steps in a row (steps 6-8", 0), 0u) << last;
  EXPECT_NE(last.find("the last good checkpoint is intact (" + ckpt(run, 6) + ")\n"), std::string::npos) << last;
  const auto train = read_records(run, "train");
  ASSERT_EQ(train.size(), 8u);
  EXPECT_EQ(train[2]["skipped"], true);
  EXPECT_EQ(train[3]["skipped"], false);
  EXPECT_EQ(train[7]["skipped_steps"], 4);
  const Json state = Json::parse(test::read_bytes(fs::path(ckpt(run, 6)) / "trainer_state.json"));
  EXPECT_EQ(state["skipped_steps"], 2);
  EXPECT_EQ(state["consecutive_nonfinite"], 1);
  EXPECT_EQ(test::run_upcycle({"inspect", ckpt(run, 6)}).exit_code, 0);
  for (const auto& e : fs::directory_iterator(run / "checkpoints"))
    EXPECT_FALSE(e.path().filename().string().starts_with(".")) << e.path();
}

TEST_F(TrainCli, TokenIdsBeyondTheVocabAreRejectedBeforeTraining) {
  test::write_dataset(*dir_ / "wide", "wide", {1, 2, 3, 20, 4, 5, 6, 7, 8, 9, 1, 2}, {}, 40);
  const fs::path run = *dir_ / "never";
  auto r = test::run_upcycle({"train", "--model", (*dir_ / "dense").string(), "--data", (*dir_ / "wide").string(),
                              "--out", run.string(), "--seq-len", "4", "--micro-batch", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("token id 20"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(run));
}

TEST_F(TrainCli, NonEmptyRunDirectoryNeedsResumeOrForce) {
  const fs::path run = *dir_ / "occupied";
  fs::create_directories(run);
  test::write_bytes(run / "notes.txt", "mine");
  auto a = args(false, run);
  auto r = test::run_upcycle(a);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("pass --resume to continue its run or --force to start over (" + run.string() + ")"),
            std::string::npos)
      << r.err;
  a.push_back("--force");
  r = test::run_upcycle(a);
  EXPECT_EQ(r.exit_code, 2);  // not a run directory: --force refuses to empty it
  EXPECT_NE(r.err.find("not a training run"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(run / "notes.txt"));
  // A run directory may be started over.
  auto b = args(false, *dir_ / "again", "2");
  ASSERT_EQ(test::run_upcycle(b).exit_code, 0);
  b.push_back("--force");
  r = test::run_upcycle(b);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // …but not when that would delete the model being trained.
  r = test::run_upcycle(with(b, "--model", ckpt(*dir_ / "again", 2)));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--force would delete --model"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(ckpt(*dir_ / "again", 2)));
}

TEST_F(TrainCli, FullDiskDuringACheckpointLeavesThePreviousOneIntact) {
  const fs::path run = *dir_ / "full";
  ASSERT_EQ(test::run_upcycle(with(args(false, run), "--stop-after", "5")).exit_code, 0);
  const std::string before = test::read_bytes(fs::path(ckpt(run, 5)) / "model.safetensors");
  test::RunLimits limits;
  limits.file_size = before.size() - 1;  // the next model.safetensors cannot be written
  auto r = test::run_upcycle(resume(run), limits);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("(" + ckpt(run, 10) + "/model.safetensors)"), std::string::npos) << r.err;
  EXPECT_TRUE(test::read_bytes(fs::path(ckpt(run, 5)) / "model.safetensors") == before);
  for (const auto& e : fs::directory_iterator(run / "checkpoints")) EXPECT_EQ(e.path(), fs::path(ckpt(run, 5)));
  r = test::run_upcycle(resume(run));  // space again: the run completes as if nothing happened
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_as_straight(run, false);
}

TEST_F(TrainCli, ResumeKeepsTheRecordedOptionsAndExtendsFinishedRuns) {
  const fs::path run = *dir_ / "extend";
  fs::copy(straight(false), run, fs::copy_options::recursive);
  auto r = test::run_upcycle(resume(run, {"--lr", "0.5"}));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--lr 0.5 differs from the run's recorded 0.01"), std::string::npos) << r.err;
  r = test::run_upcycle(resume(run));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("nothing to do"), std::string::npos) << r.out;
  r = test::run_upcycle(resume(run, {"--steps", "22", "--save-every", "1"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(ckpt(run, 22)));
  EXPECT_EQ(read_records(run, "train").size(), 22u);
  const Json record = Json::parse(test::read_bytes(run / "config.json"));
  EXPECT_EQ(record["options"]["steps"], 22);
  EXPECT_EQ(record["options"]["lr"], 0.01);
  EXPECT_EQ(test::run_upcycle({"train", "--out", (*dir_ / "nowhere").string(), "--resume"}).exit_code, 2);
}

TEST_F(TrainCli, EveryCheckpointLoadsInInspectAndEvalWithTheLoggedLoss) {
  // The val split as a raw uint32 file: eval's windows are the ones the trainer evaluated.
  const auto val = test::cyclic_tokens(90, 11, 0);
  std::string raw;
  for (uint32_t id : val)
    for (int b = 0; b < 4; ++b) raw += char((id >> (8 * b)) & 0xff);
  test::write_bytes(*dir_ / "val.u32", raw);
  for (bool moe : {false, true}) {
    const auto evals = read_records(straight(moe), "eval");
    for (int step : {10, 15, 20}) {
      SCOPED_TRACE(std::to_string(step));
      EXPECT_EQ(test::run_upcycle({"inspect", ckpt(straight(moe), step)}).exit_code, 0);
      auto r = test::run_upcycle({"eval", ckpt(straight(moe), step), "--data", (*dir_ / "val.u32").string(),
                                  "--seq-len", "8", "--batch", "2", "--max-tokens", "32", "--json"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const Json j = Json::parse(r.out);
      const auto logged = std::find_if(evals.begin(), evals.end(), [&](const Json& e) { return e["step"] == step; });
      ASSERT_NE(logged, evals.end());
      EXPECT_NEAR(j["loss"].get<double>(), (*logged)["loss"].get<double>(), 1e-5);
    }
  }
}

// An upcycled model starts from the dense run's Adam moments: every parameter with a dense counterpart
// (experts from the dense FFN of their layer) is copied, the 2 routers start fresh.
TEST_F(TrainCli, InitOptimizerFromDenseBroadcastsTheDenseRunsMoments) {
  auto r = test::run_upcycle({"convert", ckpt(straight(false), 20), (*dir_ / "upcycled").string(), "--experts", "4",
                              "--top-k", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path run = *dir_ / "from-dense";
  auto a = with(with(args(false, run, "2"), "--model", (*dir_ / "upcycled").string()), "--init-optimizer", "from-dense");
  r = test::run_upcycle(with(a, "--dense-optimizer", straight(false).string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("optimizer: moments of 39 parameters copied from " + ckpt(straight(false), 20) +
                       "/optimizer.safetensors; 2 start fresh (model.layers.0.block_sparse_moe.gate.weight, "
                       "model.layers.1.block_sparse_moe.gate.weight)"),
            std::string::npos)
      << r.out;
  r = test::run_upcycle(with(with(a, "--dense-optimizer", (*dir_ / "data").string()), "--out",
                             (*dir_ / "from-nothing").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--dense-optimizer: no optimizer.safetensors here"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(*dir_ / "from-nothing"));
}

TEST(TrainHelp, DocumentsEveryOptionWithItsDefault) {
  auto r = test::run_upcycle({"train", "--help"});
  ASSERT_EQ(r.exit_code, 0);
  for (const char* flag : {"--model", "--data", "--val", "--out", "--steps", "--micro-batch", "--seq-len", "--grad-accum",
                           "--lr", "--min-lr", "--warmup", "--warmup-start-lr", "--schedule", "--decay-fraction",
                           "--schedule-offset", "--beta1", "--beta2", "--eps", "--weight-decay", "--clip",
                           "--save-every", "--keep", "--eval-every", "--eval-tokens", "--seed", "--resume",
                           "--stop-after", "--threads", "--backend", "--routing", "--top-k", "--capacity-factor",
                           "--aux-loss-coef", "--z-loss-coef", "--jitter", "--expert-bias-rate", "--init-optimizer",
                           "--dense-optimizer", "--max-nonfinite", "--dirichlet-prior", "--dirichlet-coef",
                           "--dirichlet-steps"})
    EXPECT_NE(r.out.find(std::string("  ") + flag), std::string::npos) << flag;
  EXPECT_NE(r.out.find("[default: 1000]"), std::string::npos);
  EXPECT_NE(r.out.find("tensorboard --logdir"), std::string::npos);
}

}  // namespace
}  // namespace upcycle
