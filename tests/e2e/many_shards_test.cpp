// Thousands of real shards (issue 20, hostile sizes): a checkpoint whose index names ~3,600 existing
// shard files is read and written one descriptor per shard. Under the common soft limit of 1024 open
// files (hard limit higher) upcycle lifts its soft limit and works: the logits equal those of the same
// model in one file, and a conversion back into thousands of shards succeeds. Under a hard limit it
// cannot lift, reading and writing fail with one line naming the shard and the limit, exit 2, and the
// failed write leaves no output and no staging directory behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

constexpr int kLayers = 120;  // 9 tensors a layer, each alone in its shard: 1,083 shards, over 1024

class ManyShards : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new test::ScratchDir();
    for (const auto& [name, extra] : std::vector<std::pair<std::string, std::vector<std::string>>>{
             {"one", {}}, {"many", {"--max-shard-size", "1"}}}) {
      std::vector<std::string> args{"init", "--arch", "llama", "--preset", "tiny", "--layers", std::to_string(kLayers),
                                    "--seed", "3", "--dtype", "f32"};
      args.insert(args.end(), extra.begin(), extra.end());
      args.push_back((*root_ / name).string());
      auto r = test::run_upcycle(args);
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
  static void TearDownTestSuite() { delete root_; }
  static size_t shard_count(const fs::path& dir) {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir)) n += e.path().extension() == ".safetensors";
    return n;
  }
  static test::RunResult logits(const std::string& model, const fs::path& out, test::RunLimits limits = {}) {
    return test::run_upcycle({"logits", (*root_ / model).string(), "--tokens", "1 7 42 3", "--out", out.string()}, limits);
  }
  static test::ScratchDir* root_;
};
test::ScratchDir* ManyShards::root_ = nullptr;

TEST_F(ManyShards, AreReadAndWrittenUnderTheCommonSoftLimit) {
  ASSERT_GT(shard_count(*root_ / "many"), 1024u);
  const test::RunLimits common{.open_files_soft = 1024, .open_files_hard = 8192};
  auto one = logits("one", *root_ / "one.npy");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto many = logits("many", *root_ / "many.npy", common);
  ASSERT_EQ(many.exit_code, 0) << many.err;
  EXPECT_EQ(test::read_bytes(*root_ / "many.npy"), test::read_bytes(*root_ / "one.npy"));
  const fs::path out = *root_ / "moe-many";
  auto convert = test::run_upcycle({"convert", (*root_ / "many").string(), out.string(), "--experts", "2",
                                    "--top-k", "1", "--max-shard-size", "1"}, common);
  ASSERT_EQ(convert.exit_code, 0) << convert.err;
  EXPECT_GT(shard_count(out), 1024u);
  auto inspect = test::run_upcycle({"inspect", out.string()}, common);
  EXPECT_EQ(inspect.exit_code, 0) << inspect.err;
  fs::remove_all(out);
}

TEST_F(ManyShards, AHardLimitBelowTheShardCountIsOneLineNamingTheLimit) {
  const test::RunLimits tight{.open_files_soft = 512, .open_files_hard = 512};
  auto read = logits("many", *root_ / "x.npy", tight);
  EXPECT_EQ(read.exit_code, 2) << read.err;
  EXPECT_EQ(read.err.rfind("upcycle: error: ", 0), 0u) << read.err;
  EXPECT_NE(read.err.find("may open 512: raise `ulimit -n`"), std::string::npos) << read.err;
  EXPECT_NE(read.err.find(".safetensors"), std::string::npos) << read.err;
  EXPECT_EQ(std::count(read.err.begin(), read.err.end(), '\n'), 1) << read.err;
  EXPECT_FALSE(fs::exists(*root_ / "x.npy"));

  const fs::path out = *root_ / "moe-tight";
  auto write = test::run_upcycle({"convert", (*root_ / "one").string(), out.string(), "--experts", "2", "--top-k", "1",
                                  "--max-shard-size", "1"}, tight);
  EXPECT_EQ(write.exit_code, 2) << write.err;
  EXPECT_NE(write.err.find("may open 512: raise `ulimit -n`"), std::string::npos) << write.err;
  EXPECT_EQ(std::count(write.err.begin(), write.err.end(), '\n'), 1) << write.err;
  for (const auto& e : fs::directory_iterator(root_->path()))
    EXPECT_EQ(e.path().filename().string().find("moe-tight"), std::string::npos) << "left behind: " << e.path();
}

}  // namespace
}  // namespace upcycle
