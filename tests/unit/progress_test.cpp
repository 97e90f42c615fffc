// Progress lines off a terminal (stderr redirected to a file): with set_log_every a line every N
// units from the first (no quiet start), starting part-way for a resumed job, carrying the detail;
// notes are lines of their own; slow rates keep decimals.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "core/progress.h"
#include "support/test_support.h"

namespace upcycle {
namespace {

// Runs `body` with stderr sent to a file; returns what it printed, one string per line.
template <typename Body>
std::vector<std::string> captured_stderr(Body&& body) {
  test::ScratchDir dir;
  const auto file = dir / "stderr";
  std::fflush(stderr);
  const int saved = ::dup(2);
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::dup2(fd, 2);
  ::close(fd);
  body();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::istringstream in(test::read_bytes(file));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Progress, LogEveryNUnitsFromAResumedStartWithDetailAndNotes) {
  const auto lines = captured_stderr([] {
    Progress p("train", 10, "steps");
    p.start_at(4);
    p.set_log_every(3);
    for (int s = 5; s <= 10; ++s) {
      p.set_detail("loss " + std::to_string(s));
      p.advance(1);
      if (s == 6) p.note("eval at step 6");
    }
    p.finish();
  });
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "eval at step 6");
  EXPECT_EQ(lines[1].rfind("train:  70.0%  7 / 10 steps  ", 0), 0u) << lines[1];
  EXPECT_NE(lines[1].find("loss 7"), std::string::npos) << lines[1];
  EXPECT_EQ(lines[2].rfind("train: 100.0%  10 / 10 steps  ", 0), 0u) << lines[2];
  EXPECT_NE(lines[2].find(" eta 0s  loss 10"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find(" took "), std::string::npos) << lines[3];
  EXPECT_NE(lines[3].find(" steps/s"), std::string::npos) << lines[3];
}

TEST(Progress, WithoutLogEveryShortJobsStayQuiet) {
  const auto lines = captured_stderr([] {
    Progress p("convert", 100, "bytes");
    p.advance(50);
    p.advance(50);
    p.finish();
  });
  EXPECT_TRUE(lines.empty());
}

}  // namespace
}  // namespace upcycle
