// metrics.jsonl: records appended as single lines; a fresh run refuses a log that already has records;
// a resume keeps the lines up to the step byte for byte (odd spacing included, so nothing is
// re-serialised) and drops later ones and a torn last line; a full disk (a file-size limit in a
// forked child) is an Error naming the file.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <string>

#include "support/expect_error.h"
#include "support/test_support.h"
#include "train/metrics_log.h"

namespace upcycle::train {
namespace {
namespace fs = std::filesystem;
using test::ScratchDir;

TEST(MetricsLog, AppendsOneLinePerRecord) {
  ScratchDir dir;
  const fs::path file = dir / "metrics.jsonl";
  {
    MetricsLog log(file, -1);
    log.write(Json{{"kind", "train"}, {"step", 1}, {"loss", 2.5}});
    EXPECT_EQ(test::read_bytes(file), "{\"kind\":\"train\",\"step\":1,\"loss\":2.5}\n");  // visible at once
    log.write(Json{{"kind", "eval"}, {"step", 1}, {"domain", "web"}, {"loss", 3.0}});
    log.write(Json{{"kind", "train"}, {"step", 2}, {"loss", std::nan("")}, {"lr", 0.001}});
    log.sync();
  }
  EXPECT_EQ(test::read_bytes(file),
            "{\"kind\":\"train\",\"step\":1,\"loss\":2.5}\n"
            "{\"kind\":\"eval\",\"step\":1,\"domain\":\"web\",\"loss\":3.0}\n"
            "{\"kind\":\"train\",\"step\":2,\"loss\":null,\"lr\":0.001}\n");
}

TEST(MetricsLog, FreshRunRefusesRecordsOfAnEarlierRun) {
  ScratchDir dir;
  const fs::path file = dir / "metrics.jsonl";
  test::write_bytes(file, "{\"kind\":\"train\",\"step\":1}\n");
  EXPECT_UPCYCLE_ERROR(MetricsLog(file, -1), "metrics log already holds records of an earlier run", file.string());
  EXPECT_EQ(test::read_bytes(file), "{\"kind\":\"train\",\"step\":1}\n");  // untouched
  test::write_bytes(file, "");  // an empty file is as good as none
  MetricsLog(file, -1).write(Json{{"kind", "train"}, {"step", 1}});
  EXPECT_EQ(test::read_bytes(file), "{\"kind\":\"train\",\"step\":1}\n");
  EXPECT_UPCYCLE_ERROR(MetricsLog(dir / "absent" / "metrics.jsonl", -1), "cannot open metrics log",
                       (dir / "absent" / "metrics.jsonl").string());
}

TEST(MetricsLog, ResumeDropsRecordsPastTheStep) {
  ScratchDir dir;
  const fs::path file = dir / "metrics.jsonl";
  const std::string kept =
      "{\"kind\":\"train\",\"step\":1,\"loss\":4.0}\n"
      "{\"kind\": \"eval\", \"step\": 2, \"loss\": 3.90}\n"  // spacing and "3.90" survive only if copied verbatim
      "{\"step\":2,\"kind\":\"train\",\"loss\":3.5}\n"
      "{\"kind\":\"train\",\"step\":3,\"loss\":3.25}\n";
  const std::string dropped =
      "{\"kind\":\"train\",\"step\":4,\"loss\":3.0}\n"
      "{\"kind\":\"eval\",\"step\":4,\"loss\":3.1}\n"
      "{\"kind\":\"train\",\"step\":5,\"lo";  // torn by a crash mid-write
  test::write_bytes(file, kept + dropped);
  {
    MetricsLog log(file, 3);
    EXPECT_EQ(test::read_bytes(file), kept);
    log.write(Json{{"kind", "train"}, {"step", 4}, {"loss", 2.75}});
  }
  EXPECT_EQ(test::read_bytes(file), kept + "{\"kind\":\"train\",\"step\":4,\"loss\":2.75}\n");
  for (const auto& entry : fs::directory_iterator(dir.path()))
    EXPECT_EQ(entry.path().filename(), "metrics.jsonl") << "temporary file left behind";

  // Nothing past the step: the file stays exactly as it was; resuming at step 0 drops every record
  // of a run that had only logged later steps; an absent log is simply started.
  const std::string before = test::read_bytes(file);
  { MetricsLog log(file, 4); }
  EXPECT_EQ(test::read_bytes(file), before);
  { MetricsLog log(file, 0); }
  EXPECT_EQ(test::read_bytes(file), "");
  { MetricsLog(dir / "new.jsonl", 7).write(Json{{"kind", "train"}, {"step", 8}}); }
  EXPECT_EQ(test::read_bytes(dir / "new.jsonl"), "{\"kind\":\"train\",\"step\":8}\n");
}

TEST(MetricsLog, ResumeRejectsLinesItCannotPlace) {
  ScratchDir dir;
  const fs::path file = dir / "metrics.jsonl";
  test::write_bytes(file, "{\"kind\":\"train\",\"step\":1}\n{\"kind\":\"train\"\n{\"step\":3}\n");
  EXPECT_UPCYCLE_ERROR(MetricsLog(file, 5), "metrics log line 2 is not valid JSON", file.string());
  test::write_bytes(file, "{\"kind\":\"train\",\"step\":1}\n{\"kind\":\"train\",\"step\":\"2\"}\n");
  EXPECT_UPCYCLE_ERROR(MetricsLog(file, 5), "metrics log line 2 has no integer \"step\"", file.string());
  EXPECT_EQ(test::read_bytes(file), "{\"kind\":\"train\",\"step\":1}\n{\"kind\":\"train\",\"step\":\"2\"}\n");
}

// A file-size limit stands in for a full disk (SIGXFSZ ignored, so writes fail with EFBIG). The child
// reports through its exit code: 0 = Error naming the file, 1 = no error, 2 = wrong error.
TEST(MetricsLog, FullDiskIsAnErrorNamingTheFile) {
  ScratchDir dir;
  const fs::path file = dir / "metrics.jsonl";
  constexpr rlim_t kLimit = 4096;
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit {
      kLimit, kLimit
    };
    ::setrlimit(RLIMIT_FSIZE, &limit);
    try {
      MetricsLog log(file, -1);
      for (int step = 1; step <= 1000; ++step)
        log.write(Json{{"kind", "train"}, {"step", step}, {"loss", 1.0 / step}, {"pad", std::string(50, 'x')}});
    } catch (const Error& e) {
      const bool named = e.file() == file.string();
      ::_exit(named && std::string(e.what()).find("cannot write metrics log: file too large") == 0 ? 0 : 2);
    }
    ::_exit(1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(fs::file_size(file), kLimit);
  // What did get written resumes cleanly: whole lines kept, the torn last one dropped.
  MetricsLog log(file, 1000);
  const std::string text = test::read_bytes(file);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find("{\"kind\":\"train\",\"step\":1,"), 0u);
}

}  // namespace
}  // namespace upcycle::train
