// What the dist tests share (dist_train_test.cpp on one machine, multi_host_test.cpp across network
// namespaces): the suite's training inputs, the training flags of the tiny models, the
// 1-process-vs-2-processes comparison, the pid of one rank of a running job, signalling it once a
// checkpoint exists, and the newest checkpoint of a run. Header-only, like mpi_job.h.
#pragma once

#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"
#include "dist/mpi_job.h"
#include "support/test_support.h"
#include "support/train_run_support.h"

namespace upcycle::test {

// Relative loss difference allowed between 1 and 2 processes. The only difference is where float
// additions of the gradient happen: one process adds micro-batch 2's contributions into the gradient
// buffer inside backward's kernels, two processes add the two finished micro-batch gradients in the
// reduction. Each gradient element then differs by about one float ulp (6e-8 relative); AdamW divides
// by √v, so updates differ by as little, and the loss drifts by ~1e-8 over 15 steps (measured:
// 1.4e-8 dense, 9e-9 MoE). 1e-6 leaves 70× room for other kernels' rounding and stays far below
// what an unreduced gradient gives (3e-2, measured by disabling the reduction).
constexpr double kLossTolerance = 1e-6;

// `upcycle train` on the inputs of write_train_inputs(inputs): micro-batches of 2 × 8 tokens, a
// checkpoint every 4 steps, an evaluation every 5, one thread.
inline std::vector<std::string> dist_train_args(const std::filesystem::path& inputs, bool moe,
                                                const std::filesystem::path& out, const std::string& grad_accum,
                                                const std::string& steps = "15") {
  std::vector<std::string> a = {"train", "--model", (inputs / (moe ? "moe" : "dense")).string(), "--data",
                                (inputs / "data").string(), "--val", (inputs / "data").string(), "--out", out.string(),
                                "--steps", steps, "--micro-batch", "2", "--seq-len", "8", "--grad-accum", grad_accum,
                                "--lr", "1e-2", "--warmup", "3", "--save-every", "4", "--eval-every", "5",
                                "--eval-tokens", "32", "--threads", "1"};
  if (moe)  // every MoE statistic that feeds back into training: jitter seeds, the expert bias, z-loss
    for (const char* s : {"--jitter", "0.1", "--expert-bias-rate", "0.01", "--z-loss-coef", "0.001"}) a.push_back(s);
  return a;
}

// Run `two` (2 processes × --grad-accum 1, 15 steps) follows run `one` (1 process × --grad-accum 2):
// step 1 equal to the last bit, then within kLossTolerance; the MoE expert loads equal; returns the
// largest relative loss difference.
inline double expect_two_processes_follow_one(const std::filesystem::path& one, const std::filesystem::path& two,
                                              bool moe) {
  const auto a = read_records(one, "train"), b = read_records(two, "train");
  EXPECT_EQ(a.size(), 15u);
  EXPECT_EQ(b.size(), 15u);  // rank 0 alone wrote metrics.jsonl: one record per step
  if (a.size() != b.size() || a.empty()) return INFINITY;
  EXPECT_EQ(a[0]["loss"], b[0]["loss"]);  // the same rows, the same weights: no sum has happened yet
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["tokens"], b[i]["tokens"]);
    const double la = a[i]["loss"].get<double>(), lb = b[i]["loss"].get<double>();
    worst = std::max(worst, std::fabs(la - lb) / std::fabs(la));
    if (moe) {  // global expert counts
      EXPECT_EQ(a[i]["moe"][0]["load"], b[i]["moe"][0]["load"]) << "step " << i + 1;
    }
  }
  EXPECT_LE(worst, kLossTolerance);
  EXPECT_LT(a.back()["loss"].get<double>(), a.front()["loss"].get<double>());
  return worst;
}

// The pid of rank `rank` of the MpiJob whose mpirun is `launcher`: the process whose environment holds
// OMPI_COMM_WORLD_RANK=rank and the job's marker (mpi_job.h). Found by environment, not by parentage:
// across hosts the ranks are children of Open MPI daemons that detach from mpirun. -1 when there is none.
inline pid_t rank_pid(pid_t launcher, int rank) {
  const std::string want_rank = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank),
                    want_job = std::string(kJobMarker) + "=" + std::to_string(launcher);
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream env(entry.path() / "environ");
    int found = 0;
    for (std::string var; found < 2 && std::getline(env, var, '\0');) found += var == want_rank || var == want_job;
    if (found == 2) return pid_t(std::stol(name));
  }
  return -1;
}

// The step of the newest checkpoint of `run`, if any.
inline std::optional<int> newest_checkpoint_step(const std::filesystem::path& run) {
  std::optional<int> newest;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(run) / "checkpoints", ec)) {
    const std::string name = e.path().filename();
    if (name.rfind("step-", 0) == 0) newest = std::max(newest.value_or(0), std::stoi(name.substr(5)));
  }
  return newest;
}

// Waits (at most `seconds`) until the running job has written a checkpoint of step `step` or later;
// the newest step then, if any. Not "until step-N exists": --keep prunes it a few milliseconds later.
inline std::optional<int> wait_for_checkpoint(const std::filesystem::path& run, int step, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    const std::optional<int> newest = newest_checkpoint_step(run);
    if (newest && *newest >= step) return newest;
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// A test suite whose tests train on one set of write_train_inputs() files, made once per suite.
class TrainInputsSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir;
    write_train_inputs(dir_->path());
  }
  static void TearDownTestSuite() { delete dir_; }
  static inline ScratchDir* dir_ = nullptr;
};

// What a job did after one of its ranks was signalled: its result, and the seconds from the signal to
// its end.
struct SignalledJob {
  MpiResult result;
  double seconds = 0;
};

// Waits (60 s at most) until the running `job` has a checkpoint of step `step` or later in `run`, sends
// `signal` to its rank `rank`, and waits (120 s at most) for the job to end. Not getting that far is a
// test failure (with the job's output) and nullopt.
inline std::optional<SignalledJob> signal_rank_after_checkpoint(MpiJob& job, const std::filesystem::path& run, int step,
                                                                int rank, int signal) {
  if (!wait_for_checkpoint(run, step, 60)) {
    ADD_FAILURE() << "no checkpoint of step " << step << " or later; the job's output:\n" << job.wait(0).output;
    return std::nullopt;
  }
  const pid_t victim = rank_pid(job.pid(), rank);
  if (victim <= 0) {
    ADD_FAILURE() << "rank " << rank << " of the job is not running";
    return std::nullopt;
  }
  const auto sent = std::chrono::steady_clock::now();
  ::kill(victim, signal);
  SignalledJob s{job.wait(120)};
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  std::printf("job stopped %.2f s after signal %d to rank %d, exit %d:\n%s\n", s.seconds, signal, rank,
              s.result.exit_code, s.result.output.c_str());
  return s;
}

// A SIGKILLed rank 1: mpirun notices and ends the job, non-zero, naming the rank, within 30 s.
inline void expect_stopped_by_killing_rank_1(const SignalledJob& s) {
  EXPECT_FALSE(s.result.timed_out);
  EXPECT_LT(s.seconds, 30.0);
  EXPECT_NE(s.result.exit_code, 0);
  EXPECT_NE(s.result.output.find("rank 1"), std::string::npos) << s.result.output;
}

}  // namespace upcycle::test
