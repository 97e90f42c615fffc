// Staging directories of killed writers are removed before a new write to the same output; those of
// a writer that may be alive are kept (io/stale_staging.h).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include "core/file_util.h"
#include "io/output_dir.h"
#include "io/stale_staging.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

// A PID that existed and is gone: a child that exited and was reaped.
pid_t dead_pid() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

fs::path make_sibling(const fs::path& root, const std::string& name) {
  fs::create_directory(root / name);
  test::write_bytes(root / name / "model.safetensors", std::string(1000, 'x'));
  return root / name;
}

TEST(StaleStaging, ParsesOnlyTheSiblingsOfThisOutput) {
  EXPECT_EQ(staging_owner_pid(".out.tmp-123-45", "out"), 123);
  EXPECT_EQ(staging_owner_pid(".out.old-9-0", "out"), 9);
  EXPECT_EQ(staging_owner_pid(".out.tmp-123-45", "ou"), -1);     // another output's
  EXPECT_EQ(staging_owner_pid(".outx.tmp-123-45", "out"), -1);
  EXPECT_EQ(staging_owner_pid(".out.tmp-123", "out"), -1);       // no serial
  EXPECT_EQ(staging_owner_pid(".out.tmp-123-", "out"), -1);
  EXPECT_EQ(staging_owner_pid(".out.tmp--1-2", "out"), -1);
  EXPECT_EQ(staging_owner_pid(".out.tmp-12a-2", "out"), -1);
  EXPECT_EQ(staging_owner_pid(".out.step-3", "out"), -1);
  EXPECT_EQ(staging_owner_pid("out.tmp-1-2", "out"), -1);        // not hidden
}

TEST(StaleStaging, ANewWriteRemovesWhatDeadWritersLeft) {
  test::ScratchDir root;
  const std::string pid = std::to_string(dead_pid());
  make_sibling(root.path(), ".out.tmp-" + pid + "-7");
  make_sibling(root.path(), ".out.old-" + pid + "-3");
  make_sibling(root.path(), ".other.tmp-" + pid + "-1");  // another output's: not ours to judge
  {
    StagedDir staged(root / "out", Overwrite::kRefuse);
    write_text_file(staged.path() / "a.txt", "new");
    staged.commit();
  }
  EXPECT_FALSE(fs::exists(root / (".out.tmp-" + pid + "-7")));
  EXPECT_FALSE(fs::exists(root / (".out.old-" + pid + "-3")));
  EXPECT_TRUE(fs::exists(root / (".other.tmp-" + pid + "-1")));
  EXPECT_EQ(test::read_bytes(root / "out" / "a.txt"), "new");
}

TEST(StaleStaging, AReusedPidRunningAnotherProgramIsADeadWriter) {
  test::ScratchDir root;
  // Our parent (ctest, a shell) is alive but is not this program: the writer that had its PID is gone.
  fs::path sibling = make_sibling(root.path(), ".out.tmp-" + std::to_string(::getppid()) + "-1");
  StaleStaging result = remove_stale_staging(root / "out");
  EXPECT_EQ(result.removed, std::vector<fs::path>{sibling});
  EXPECT_TRUE(result.warnings.empty());
}

TEST(StaleStaging, AKilledWriterNotYetReapedIsDead) {
  test::ScratchDir root;
  pid_t writer = ::fork();
  if (writer == 0) {
    ::pause();
    ::_exit(0);
  }
  ::kill(writer, SIGKILL);
  siginfo_t info{};
  ::waitid(P_PID, writer, &info, WEXITED | WNOWAIT);  // dead, but still a zombie: not reaped
  fs::path sibling = make_sibling(root.path(), ".out.tmp-" + std::to_string(writer) + "-3");
  StaleStaging result = remove_stale_staging(root / "out");
  ::waitpid(writer, nullptr, 0);
  EXPECT_EQ(result.removed, std::vector<fs::path>{sibling});
}

TEST(StaleStaging, ALiveWriterKeepsItsDirectoryAndIsNamed) {
  test::ScratchDir root;
  pid_t writer = ::fork();  // the same program, still running: it may be writing this output
  if (writer == 0) {
    ::pause();
    ::_exit(0);
  }
  fs::path sibling = make_sibling(root.path(), ".out.tmp-" + std::to_string(writer) + "-2");
  StaleStaging result = remove_stale_staging(root / "out");
  ::kill(writer, SIGKILL);
  ::waitpid(writer, nullptr, 0);
  EXPECT_TRUE(result.removed.empty());
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_NE(result.warnings[0].find(sibling.string() + " (1.00 KB)"), std::string::npos) << result.warnings[0];
  EXPECT_NE(result.warnings[0].find("may still be writing"), std::string::npos) << result.warnings[0];
  EXPECT_TRUE(fs::exists(sibling));
  // Once that writer is dead, the next write clears it.
  EXPECT_EQ(remove_stale_staging(root / "out").removed, std::vector<fs::path>{sibling});
}

}  // namespace
}  // namespace upcycle
