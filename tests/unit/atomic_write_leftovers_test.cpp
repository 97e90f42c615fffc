// write_file_atomically after a kill: a writer SIGKILLed before its rename leaves ".NAME.tmp.PID";
// the kill soak found such files left for good (a study's analysis JSON). The next write of NAME
// removes those whose writer is provably dead — gone, a zombie, or a PID reused by another program (the
// test of core/writer_liveness.h, shared with the staging directories) — and keeps a live writer's.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/file_util.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

TEST(AtomicWriteLeftovers, DeadWritersTempFilesGoLiveOnesStay) {
  test::ScratchDir dir;
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ASSERT_GT(gone, 0);
  ASSERT_EQ(::waitpid(gone, nullptr, 0), gone);  // reaped: its PID names no process now
  const pid_t zombie = ::fork();                 // killed, not yet reaped
  if (zombie == 0) ::pause();
  ASSERT_GT(zombie, 0);
  ::kill(zombie, SIGKILL);
  siginfo_t info{};
  ::waitid(P_PID, zombie, &info, WEXITED | WNOWAIT);
  const pid_t writer = ::fork();                 // this program, still running: may be writing
  if (writer == 0) ::pause();
  ASSERT_GT(writer, 0);
  auto temp_of = [&](const std::string& name, pid_t pid) { return dir / ("." + name + ".tmp." + std::to_string(pid)); };
  const fs::path dead = temp_of("record.json", gone);
  const fs::path unreaped = temp_of("record.json", zombie);
  const fs::path reused = temp_of("record.json", ::getppid());  // ctest or a shell: not a writer of ours
  const fs::path live = temp_of("record.json", writer);
  const fs::path other = temp_of("other.json", gone);
  for (const auto& p : {dead, unreaped, reused, live, other}) test::write_bytes(p, "{\"half");
  write_text_file_atomically(dir / "record.json", "record", "{}\n");
  ::kill(writer, SIGKILL);
  ::waitpid(writer, nullptr, 0);
  ::waitpid(zombie, nullptr, 0);
  EXPECT_EQ(test::read_bytes(dir / "record.json"), "{}\n");
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_FALSE(fs::exists(unreaped));
  EXPECT_FALSE(fs::exists(reused));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other));  // another file's leftovers wait for that file's next write
}

}  // namespace
}  // namespace upcycle
