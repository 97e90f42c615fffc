// Data-parallel `upcycle train` across two hosts (issue 18 part 6): each host a network namespace of
// this machine (netns_hosts.h), mpirun in the root namespace starting one rank per host through an agent
// script instead of ssh, the ranks talking over TCP through a bridge.
//  - 2 ranks on 2 hosts × --grad-accum 1 follow 1 process × --grad-accum 2 (the same global batch) as
//    the one-machine test does, and the gradients really crossed host 2's link;
//  - SIGKILL to the rank on host 2 stops the job quickly, and the last checkpoint resumes on the hosts.
// Fails (never skips) when the hosts cannot be made: the test needs root, as CI has.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <thread>

#include "dist/dist_test_support.h"
#include "dist/mpi_job.h"
#include "dist/netns_hosts.h"
#include "support/test_support.h"
#include "support/train_run_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

class MultiHost : public test::TrainInputsSuite {
 protected:
  void SetUp() override { ASSERT_EQ(hosts_.error(), "") << "cannot make the hosts (the test needs root)"; }

  test::MpiResult train_on_hosts(const std::vector<std::string>& args) {
    return test::run_mpi(2, UPCYCLE_BINARY, args, {}, 120, hosts_.mpirun_args());
  }
  test::NetnsHosts hosts_{2};
};

TEST_F(MultiHost, TwoHostsOverTcpFollowOneProcessWithTheSameGlobalBatch) {
  for (bool moe : {false, true}) {
    SCOPED_TRACE(moe ? "moe" : "dense");
    const fs::path one = *dir_ / (moe ? "one-moe" : "one-dense"), two = *dir_ / (moe ? "hosts-moe" : "hosts-dense");
    auto r1 = test::run_upcycle(test::dist_train_args(dir_->path(), moe, one, "2"));
    ASSERT_EQ(r1.exit_code, 0) << r1.err;
    const uint64_t before = hosts_.link_bytes(2);
    auto r2 = train_on_hosts(test::dist_train_args(dir_->path(), moe, two, "1"));
    ASSERT_EQ(r2.exit_code, 0) << r2.output;
    // Each of the 15 steps sends rank 1's fp32 gradient to rank 0 and the sum back: at least the size of
    // the model file (weights of ≤ 4 bytes each) per step.
    const uint64_t crossed = hosts_.link_bytes(2) - before;
    const uint64_t model_bytes = fs::file_size(dir_->path() / (moe ? "moe" : "dense") / "model.safetensors");
    EXPECT_GE(crossed, 15 * model_bytes);
    const std::string log = hosts_.agent_log();
    EXPECT_NE(log.find(hosts_.address(1) + " "), std::string::npos) << log;
    EXPECT_NE(log.find(hosts_.address(2) + " "), std::string::npos) << log;
    const double worst = test::expect_two_processes_follow_one(one, two, moe);
    std::printf("%s: 2 hosts over TCP, %llu bytes through host 2's link; largest relative loss difference to 1 "
                "process over 15 steps: %.3g\n",
                moe ? "moe" : "dense", static_cast<unsigned long long>(crossed), worst);
  }
}

TEST_F(MultiHost, AKilledRankOnTheSecondHostStopsTheJobAndTheLastCheckpointResumes) {
  const fs::path run = *dir_ / "hosts-killed";
  const auto a = test::with(test::dist_train_args(dir_->path(), false, run, "1", "100000"), "--save-every", "10");
  test::MpiJob job(2, UPCYCLE_BINARY, a, {}, hosts_.mpirun_args());
  const auto killed = test::signal_rank_after_checkpoint(job, run, 20, 1, SIGKILL);  // rank 1 runs under host 2's daemon
  ASSERT_TRUE(killed);
  test::expect_stopped_by_killing_rank_1(*killed);
  const std::optional<int> newest = test::newest_checkpoint_step(run);
  ASSERT_TRUE(newest);
  auto resumed = train_on_hosts({"train", "--out", run.string(), "--resume", "--steps", std::to_string(*newest + 3)});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(fs::exists(test::ckpt(run, *newest + 3)));
}

}  // namespace
}  // namespace upcycle
