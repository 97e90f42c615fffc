// StopSignalGuard: the first SIGINT/SIGTERM only sets the flag (the process lives on), a second one
// kills with the signal's default action (checked on a forked child's wait status), and the actions
// in place before the guard are back once it is gone.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include "core/stop_signal.h"

namespace upcycle {
namespace {

volatile std::sig_atomic_t g_outer_calls = 0;
extern "C" void count_outer(int) { g_outer_calls = g_outer_calls + 1; }

// Runs `body` in a forked child; returns its wait status.
template <typename Body>
int in_child(Body&& body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(StopSignalGuard, FirstSignalSetsTheFlag) {
  for (int sig : {SIGTERM, SIGINT}) {
    StopSignalGuard guard;
    EXPECT_FALSE(guard.requested());
    EXPECT_EQ(guard.signal(), 0);
    ASSERT_EQ(::raise(sig), 0);  // this process survives it
    EXPECT_TRUE(guard.requested());
    EXPECT_EQ(guard.signal(), sig);
  }
  StopSignalGuard fresh;  // a new guard starts clear
  EXPECT_FALSE(fresh.requested());
}

TEST(StopSignalGuard, SecondSignalKills) {
  for (int sig : {SIGTERM, SIGINT}) {
    // exit 3: the first signal was not noted; exit 0: the second one did not kill.
    const int status = in_child([sig] {
      StopSignalGuard guard;
      ::raise(SIGTERM);
      if (!guard.requested()) ::_exit(3);
      ::raise(sig);
    });
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    EXPECT_EQ(WTERMSIG(status), sig);
  }
}

TEST(StopSignalGuard, RestoresThePreviousHandlers) {
  struct sigaction outer {}, saved_int {}, saved_term {};
  outer.sa_handler = count_outer;
  sigemptyset(&outer.sa_mask);
  ASSERT_EQ(::sigaction(SIGINT, &outer, &saved_int), 0);
  ASSERT_EQ(::sigaction(SIGTERM, &outer, &saved_term), 0);
  g_outer_calls = 0;
  {
    StopSignalGuard guard;
    ::raise(SIGTERM);
    EXPECT_TRUE(guard.requested());
    EXPECT_EQ(g_outer_calls, 0);  // the guard's handler ran, not the outer one
  }
  ::raise(SIGTERM);
  ::raise(SIGINT);
  EXPECT_EQ(g_outer_calls, 2);  // back to the outer handler for both signals
  struct sigaction now {};
  ::sigaction(SIGINT, nullptr, &now);
  EXPECT_EQ(now.sa_handler, count_outer);
  ::sigaction(SIGINT, &saved_int, nullptr);
  ::sigaction(SIGTERM, &saved_term, nullptr);

  // Default actions come back as defaults: a guard used and dropped leaves SIGTERM fatal again.
  const int status = in_child([] {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(SIGTERM, &dfl, nullptr);
    { StopSignalGuard guard; }
    ::raise(SIGTERM);
  });
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
}

}  // namespace
}  // namespace upcycle
