// Data-parallel `upcycle train` under mpirun (docs/distributed.md), on the tiny dense and MoE models of
// the train tests:
//  - 2 processes × --grad-accum 1 give the loss curve of 1 process × --grad-accum 2 (the same global
//    batch) within kLossTolerance (dist_test_support.h); step 1, before any gradient sum, is equal to the last bit;
//  - two 2-process runs are bitwise identical (metrics and checkpoint files), and so is a 2-process run
//    stopped and resumed with 2 processes;
//  - a 2-process checkpoint resumes with 1 process: the data stream and the counters carry on;
//  - errors name the rank; a rank killed with SIGKILL stops the job quickly, naming the rank, with the
//    last checkpoint intact and resumable; a SIGTERM to one rank stops all after the same step;
//  - a rank that hangs (SIGSTOP) stops the job after --dist-timeout with one line naming it, and the
//    last checkpoint resumes bit for bit.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>
#include <regex>
#include <thread>

#include "core/json.h"
#include "dist/dist_test_support.h"
#include "dist/mpi_job.h"
#include "support/test_support.h"
#include "support/train_run_support.h"
#include "support/train_test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

// test::ckpt as a path, to join file names to.
fs::path ckpt(const fs::path& run, int step) { return test::ckpt(run, step); }

class DistTrain : public test::TrainInputsSuite {
 protected:
  static std::vector<std::string> args(bool moe, const fs::path& out, const std::string& grad_accum,
                                       const std::string& steps = "15") {
    return test::dist_train_args(dir_->path(), moe, out, grad_accum, steps);
  }
  static test::MpiResult mpi_train(int np, const std::vector<std::string>& a) {
    return test::run_mpi(np, UPCYCLE_BINARY, a);
  }
};

TEST_F(DistTrain, TwoProcessesFollowOneProcessWithTheSameGlobalBatch) {
  for (bool moe : {false, true}) {
    SCOPED_TRACE(moe ? "moe" : "dense");
    const fs::path one = *dir_ / (moe ? "one-moe" : "one-dense"), two = *dir_ / (moe ? "two-moe" : "two-dense");
    auto r1 = test::run_upcycle(args(moe, one, "2"));
    ASSERT_EQ(r1.exit_code, 0) << r1.err;
    auto r2 = mpi_train(2, args(moe, two, "1"));
    ASSERT_EQ(r2.exit_code, 0) << r2.output;
    const double worst = test::expect_two_processes_follow_one(one, two, moe);
    std::printf("%s: largest relative loss difference 1 vs 2 processes over 15 steps: %.3g\n", moe ? "moe" : "dense", worst);
    // One progress stream and one final line: the other rank prints nothing of its own.
    size_t trained = 0;
    for (size_t p = 0; (p = r2.output.find("trained ", p)) != std::string::npos; ++p) ++trained;
    EXPECT_EQ(trained, 1u) << r2.output;
    const Json record = Json::parse(test::read_bytes(two / "config.json"));
    EXPECT_EQ(record["world_size"], 2);
    EXPECT_EQ(record["tokens_per_step"], 2 * 8 * 2);
  }
}

TEST_F(DistTrain, TwoProcessRunsAreBitwiseReproducibleAndResumeExactly) {
  const fs::path a = *dir_ / "rep-a", b = *dir_ / "rep-b", split = *dir_ / "rep-split";
  for (const fs::path& run : {a, b}) {
    auto r = mpi_train(2, args(true, run, "2", "12"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  test::expect_same_runs(a, b, 12);
  auto stop_args = args(true, split, "2", "12");
  stop_args.insert(stop_args.end(), {"--stop-after", "6"});
  auto r = mpi_train(2, stop_args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = mpi_train(2, {"train", "--out", split.string(), "--resume"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  test::expect_same_runs(a, split, 12);
}

TEST_F(DistTrain, ACheckpointOfTwoProcessesResumesWithOne) {
  const fs::path run = *dir_ / "two-then-one";
  auto stop_args = args(false, run, "1", "8");
  stop_args.insert(stop_args.end(), {"--stop-after", "4"});
  auto r2 = mpi_train(2, stop_args);
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  auto r1 = test::run_upcycle({"train", "--out", run.string(), "--resume"});
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  EXPECT_NE(r1.out.find("resuming with 1 processes, the checkpoint was written by 2"), std::string::npos) << r1.out;
  const Json state = Json::parse(test::read_bytes(ckpt(run, 8) / "trainer_state.json"));
  const int64_t B = 2, L = 8;
  EXPECT_EQ(state["tokens"], 4 * 2 * B * L + 4 * B * L);  // 4 steps of the 2-process batch, 4 of the 1-process one
  EXPECT_EQ(state["data"]["draws"], 4 * 2 * B + 4 * B);  // the one data stream carried on
  EXPECT_FALSE(state.contains("world_size"));            // written by one process
  EXPECT_EQ(test::read_records(run, "train").size(), 8u);
}

TEST_F(DistTrain, ErrorsNameTheirRank) {
  auto a = args(false, *dir_ / "bad", "1");
  a[2] = (*dir_ / "no-such-model").string();
  auto r = mpi_train(2, a);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("upcycle: error: rank 0 of 2: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("upcycle: error: rank 1 of 2: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no-such-model"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(*dir_ / "bad"));
}

TEST_F(DistTrain, AKilledRankStopsTheJobAndTheLastCheckpointResumes) {
  const fs::path run = *dir_ / "killed";
  auto a = args(false, run, "1", "100000");
  a = {a.begin(), a.end()};
  for (auto& v : a)
    if (v == "4") v = "50";  // --save-every 50
  test::MpiJob job(2, UPCYCLE_BINARY, a);
  const auto killed = test::signal_rank_after_checkpoint(job, run, 100, 1, SIGKILL);
  ASSERT_TRUE(killed);
  test::expect_stopped_by_killing_rank_1(*killed);
  // Whatever rank 0 was doing, the newest checkpoint is complete: a resume of 2 processes continues it.
  const std::optional<int> newest = test::newest_checkpoint_step(run);
  ASSERT_TRUE(newest);
  auto resumed = mpi_train(2, {"train", "--out", run.string(), "--resume", "--steps", std::to_string(*newest + 3)});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(fs::exists(ckpt(run, *newest + 3)));
}

TEST_F(DistTrain, ANegativeOrNonFiniteDistTimeoutIsRefused) {
  for (const char* bad : {"-1", "nan", "inf"}) {
    const fs::path out = *dir_ / "bad-timeout";
    auto r = test::run_upcycle(test::with(args(false, out, "1"), "--dist-timeout", bad));
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.err.find("--dist-timeout must be ≥ 0 seconds (got "), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
}

// A stopped rank (SIGSTOP: alive, silent, like an endless loop or a stuck disk) blocks the others in
// their next collective; after --dist-timeout rank 0 names it in one line and aborts the job. The
// newest checkpoint then resumes bit for bit: the resumed run, 3 steps on, equals a straight run.
TEST_F(DistTrain, AHungRankStopsTheJobAfterTheTimeoutNamingItAndTheCheckpointResumesExactly) {
  constexpr double kTimeout = 5;
  const fs::path run = *dir_ / "hung", straight = *dir_ / "hung-straight";
  auto a = test::with(test::with(args(false, run, "1", "100000"), "--save-every", "10"), "--dist-timeout", "5");
  test::MpiJob job(2, UPCYCLE_BINARY, a);
  const auto stopped = test::signal_rank_after_checkpoint(job, run, 20, 1, SIGSTOP);
  ASSERT_TRUE(stopped);
  const test::MpiResult& r = stopped->result;
  const double stop_seconds = stopped->seconds;
  ASSERT_FALSE(r.timed_out);
  EXPECT_GE(stop_seconds, kTimeout - 1);   // nobody gave up early (rank 0's wait may have begun just before the stop)
  EXPECT_LT(stop_seconds, kTimeout + 15);  // rank 0 gives up after kTimeout; MPI_Abort tears the job down
  EXPECT_NE(r.exit_code, 0);
  // "took nothing" when rank 1 stopped after sending its gradient, before taking the sum.
  EXPECT_TRUE(std::regex_search(r.output, std::regex("upcycle: error: rank 0 of 2: rank 1 (sent|took) nothing for 5 s in "
                                                     "the [a-z ]+ step [0-9]+ \\(hung or too slow; --dist-timeout S\\)\n")))
      << r.output;
  size_t lines = 0;
  for (size_t p = 0; (p = r.output.find("upcycle: error:", p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, 1u) << r.output;
  const std::optional<int> newest = test::newest_checkpoint_step(run);
  ASSERT_TRUE(newest);
  auto resumed = mpi_train(2, {"train", "--out", run.string(), "--resume", "--stop-after", "3"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  auto straight_args = test::with(a, "--out", straight.string());
  auto s = mpi_train(2, test::with(straight_args, "--stop-after", std::to_string(*newest + 3)));
  ASSERT_EQ(s.exit_code, 0) << s.output;
  test::expect_same_runs(straight, run, *newest + 3);
}

// A SIGTERM seen by one rank (here rank 1 alone; scancel signals every rank, at slightly different
// moments) stops all ranks after the same step: rank 0 writes that step's checkpoint, nobody waits
// forever, and a resume of 2 processes finishes the run.
TEST_F(DistTrain, SigtermToOneRankStopsAllAfterTheSameStepWithACheckpoint) {
  const fs::path run = *dir_ / "terminated";
  auto a = args(false, run, "1", "100000");
  for (auto& v : a)
    if (v == "4") v = "1000";  // --save-every 1000: the checkpoint found is the one the stop wrote
  test::MpiJob job(2, UPCYCLE_BINARY, a);
  const auto started = std::chrono::steady_clock::now();
  while (!fs::exists(run / "metrics.jsonl") && std::chrono::steady_clock::now() - started < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const pid_t rank1 = test::rank_pid(job.pid(), 1);
  ASSERT_GT(rank1, 0);
  ::kill(rank1, SIGTERM);
  const auto r = job.wait(60);
  ASSERT_FALSE(r.timed_out) << r.output;
  const size_t at = r.output.find("stopped by SIGTERM at step ");
  ASSERT_NE(at, std::string::npos) << r.output;
  const int step = std::stoi(r.output.substr(at + std::strlen("stopped by SIGTERM at step ")));
  EXPECT_TRUE(fs::exists(ckpt(run, step) / "trainer_state.json"));
  EXPECT_EQ(test::read_records(run, "train").size(), size_t(step));
  auto resumed = mpi_train(2, {"train", "--out", run.string(), "--resume", "--steps", std::to_string(step + 2)});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(test::read_records(run, "train").size(), size_t(step + 2));
}

}  // namespace
}  // namespace upcycle
