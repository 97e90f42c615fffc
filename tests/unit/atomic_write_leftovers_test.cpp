// write_file_atomically after a kill: a writer SIGKILLed before its rename leaves ".NAME.tmp.PID";
// the kill soak found such files left for good (a study's analysis JSON). The next write of NAME
// removes those of dead processes and keeps a live writer's.
#include <gtest/gtest.h>

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
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // reaped: its PID names no process now
  const fs::path dead = dir / (".record.json.tmp." + std::to_string(child));
  const fs::path live = dir / (".record.json.tmp." + std::to_string(::getppid()));
  const fs::path other = dir / (".other.json.tmp." + std::to_string(child));
  for (const auto& p : {dead, live, other}) test::write_bytes(p, "{\"half");
  write_text_file_atomically(dir / "record.json", "record", "{}\n");
  EXPECT_EQ(test::read_bytes(dir / "record.json"), "{}\n");
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other));  // another file's leftovers wait for that file's next write
}

}  // namespace
}  // namespace upcycle
