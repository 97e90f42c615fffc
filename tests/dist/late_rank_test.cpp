// The bounded waits of the MPI process group (--dist-timeout) at 3 ranks, on late_rank_check:
//  - a silent rank 1 is named by rank 0 after the limit, in one line; rank 2, which waits on rank 0,
//    gives rank 0 its grace period and says nothing; the job ends long before rank 1 would have woken;
//  - a silent rank 0 is named by the others;
//  - a rank late by less than the limit is waited for: the reduction completes.
#include <gtest/gtest.h>

#include <string>

#include "dist/mpi_job.h"

namespace upcycle {
namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = 0; (p = text.find(what, p)) != std::string::npos; ++p) ++n;
  return n;
}

test::MpiResult run_check(int late, const std::string& sleep_seconds, const std::string& limit) {
  return test::run_mpi(3, LATE_RANK_CHECK, {std::to_string(late), sleep_seconds, limit}, {}, 60);
}

TEST(DistGroup, RankZeroNamesASilentRankAfterTheLimit) {
  const auto r = run_check(1, "60", "1");
  ASSERT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(r.seconds, 20);  // 1 s limit, start-up and teardown: not rank 1's 60 s
  EXPECT_NE(r.output.find("upcycle: error: rank 0 of 3: rank 1 sent nothing for 1 s in the check's reduction "
                          "(hung or too slow; --dist-timeout S)\n"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(count(r.output, "upcycle: error:"), 1u) << r.output;
}

TEST(DistGroup, TheOthersNameASilentRankZero) {
  const auto r = run_check(0, "60", "1");
  ASSERT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(r.seconds, 20);
  EXPECT_NE(r.output.find(": rank 0 sent nothing for 1 s in the check's reduction"), std::string::npos) << r.output;
  EXPECT_EQ(count(r.output, "upcycle: error:"), count(r.output, "rank 0 sent nothing")) << r.output;
}

TEST(DistGroup, ARankLateByLessThanTheLimitIsWaitedFor) {
  const auto r = run_check(2, "1", "5");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count(r.output, "upcycle: error:"), 0u) << r.output;
}

}  // namespace
}  // namespace upcycle
