// prepare_fresh_run_dir after a kill: a fresh start SIGKILLed between creating RUN_DIR/checkpoints and
// committing config.json left a directory that neither --resume (no record) nor --force (not a run)
// accepted; the kill soak (tests/soak/kill_soak.py) found it. The same command now starts there.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "support/test_support.h"
#include "train/run_dir.h"

namespace upcycle::train {
namespace {
namespace fs = std::filesystem;

TEST(RunDir, StartsInTheLeftoversOfAStartKilledBeforeItsRecord) {
  test::ScratchDir dir;
  const RunPaths run{dir / "run"};
  fs::create_directories(run.checkpoints());
  test::write_bytes(run.root / ".config.json.tmp.12345", "{\"format\": \"upcy");
  prepare_fresh_run_dir(run, StartOver::kNo);
  EXPECT_TRUE(fs::is_directory(run.checkpoints()));
  EXPECT_FALSE(fs::exists(run.root / ".config.json.tmp.12345"));
}

TEST(RunDir, StillRefusesADirectoryHoldingSomethingElse) {
  test::ScratchDir dir;
  const RunPaths run{dir / "run"};
  fs::create_directories(run.checkpoints() / "step-00000003");  // a checkpoint without a record: not ours to delete
  EXPECT_THROW(prepare_fresh_run_dir(run, StartOver::kNo), Error);
  EXPECT_THROW(prepare_fresh_run_dir(run, StartOver::kYes), Error);
  fs::create_directories(dir / "other");
  test::write_bytes(dir / "other" / "notes.txt", "mine");
  EXPECT_THROW(prepare_fresh_run_dir(RunPaths{dir / "other"}, StartOver::kYes), Error);
  EXPECT_TRUE(fs::exists(dir / "other" / "notes.txt"));
}

}  // namespace
}  // namespace upcycle::train
