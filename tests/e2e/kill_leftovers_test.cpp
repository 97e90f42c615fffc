// What a SIGKILL leaves must not block the rerun the user is told to make. Two states the kill soak
// (tests/soak/kill_soak.py) found refused for good: `train` killed between creating RUN_DIR/checkpoints
// and committing its config.json (neither --resume nor --force took the directory), and `study` killed
// before its first study.json (dense start written, "not empty and holds no study.json"). Rebuilt here
// as the kill leaves them; the same command must then finish.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "support/test_support.h"
#include "support/train_test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

TEST(KillLeftovers, TrainKilledBeforeItsRunRecordReruns) {
  test::ScratchDir dir;
  test::write_tiny_model(dir / "model", test::tiny_train_config(false), 7);
  test::write_dataset(dir / "data", "web", test::cyclic_tokens(400, 11, 0), test::cyclic_tokens(40, 11, 0), 11);
  fs::create_directories(dir / "run" / "checkpoints");
  test::write_bytes(dir / "run" / ".config.json.tmp.999999", "{\"format\": \"upc");
  auto r = test::run_upcycle({"train", "--model", (dir / "model").string(), "--data", (dir / "data").string(), "--out",
                              (dir / "run").string(), "--steps", "3", "--micro-batch", "2", "--seq-len", "8",
                              "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoints" / "step-00000003" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "run" / ".config.json.tmp.999999"));
}

TEST(KillLeftovers, StudyKilledBeforeItsFirstRecordReruns) {
  test::ScratchDir dir;
  test::write_dataset(dir / "alpha", "alpha", test::cyclic_tokens(2000, 37, 0), test::cyclic_tokens(200, 37, 0), 512);
  test::write_bytes(dir / "spec.yaml", "name: tiny\ndata: [" + (dir / "alpha").string() +
                                           "]\ndense:\n  init: {arch: llama, preset: tiny, dtype: f32, seed: 1}\n"
                                           "  pretrain_steps: 4\n"
                                           "train: {micro-batch: 2, seq-len: 16, eval-tokens: 32, log-every: 100}\n"
                                           "extra_compute: 0.5\nevals: 1\nanalysis_tokens: 32\n"
                                           "variants:\n  - name: dense-continuation\n");
  // The dense start as a kill leaves it: models/ and a pretraining run killed before its record.
  fs::create_directories(dir / "study" / "models");
  fs::create_directories(dir / "study" / "dense-pretrain" / "checkpoints");
  auto r = test::run_upcycle({"study", (dir / "spec.yaml").string(), "--out", (dir / "study").string(), "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "study" / "study.json"));
  // Anything else in a directory without study.json is still refused.
  fs::create_directories(dir / "other");
  test::write_bytes(dir / "other" / "notes.txt", "mine");
  r = test::run_upcycle({"study", (dir / "spec.yaml").string(), "--out", (dir / "other").string(), "--threads", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("holds no study.json"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace upcycle
