// Checkpoint directories: single file, sharded with an index, and every index/shard inconsistency
// reported as an Error naming the tensor and the offending file.
#include "io/checkpoint.h"

#include <gtest/gtest.h>

#include "support/expect_error.h"
#include "support/test_support.h"

namespace upcycle {
namespace {

using test::ScratchDir;

// A shard holding U8 tensors of one byte each, named `names`, data bytes 'a', 'b', ...
void write_shard(const std::filesystem::path& path, const std::vector<std::string>& names) {
  std::string header = "{", data;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) header += ",";
    header.append("\"").append(names[i]).append(R"(":{"dtype":"U8","shape":[1],"data_offsets":[)");
    header.append(std::to_string(i)).append(",").append(std::to_string(i + 1)).append("]}");
    data += static_cast<char>('a' + i);
  }
  test::write_safetensors_raw(path, header + "}", data);
}

void write_index(const std::filesystem::path& dir, const std::string& weight_map) {
  test::write_bytes(
      dir / kIndexFileName,
      R"({"metadata": {"total_size": 3, "mergekit_version": "0.1.4"}, "weight_map": )" + weight_map + "}");
}

class CheckpointDir : public ::testing::Test {
 protected:
  // Two shards: s1 holds x and y, s2 holds z; the index says so.
  void write_sharded() {
    write_shard(dir_ / "s1.safetensors", {"x", "y"});
    write_shard(dir_ / "s2.safetensors", {"z"});
    write_index(dir_.path(), R"({"z": "s2.safetensors", "x": "s1.safetensors", "y": "s1.safetensors"})");
  }
  std::string index_path() const { return (dir_ / kIndexFileName).string(); }
  ScratchDir dir_;
};

TEST_F(CheckpointDir, SingleFile) {
  write_shard(dir_ / kSingleFileName, {"b", "a"});
  auto checkpoint = Checkpoint::open(dir_.path());
  EXPECT_FALSE(checkpoint.sharded());
  EXPECT_EQ(checkpoint.dir(), dir_.path());
  ASSERT_EQ(checkpoint.shards().size(), 1u);
  ASSERT_EQ(checkpoint.tensors().size(), 2u);
  EXPECT_EQ(checkpoint.tensors().begin()->first, "a");  // sorted by name
  const TensorRef* b = checkpoint.find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->file, &checkpoint.shards()[0]);
  EXPECT_EQ(static_cast<char>(b->file->data(*b->info)[0]), 'a');
  EXPECT_EQ(checkpoint.find("c"), nullptr);
  EXPECT_EQ(checkpoint.total_tensor_bytes(), 2u);
}

TEST_F(CheckpointDir, SingleFileWinsOverIndex) {
  write_shard(dir_ / kSingleFileName, {"a"});
  test::write_bytes(dir_ / kIndexFileName, "not even json");
  auto checkpoint = Checkpoint::open(dir_.path());
  EXPECT_FALSE(checkpoint.sharded());
  EXPECT_NE(checkpoint.find("a"), nullptr);
}

TEST_F(CheckpointDir, ShardedWithIndex) {
  write_sharded();
  auto checkpoint = Checkpoint::open(dir_.path());
  EXPECT_TRUE(checkpoint.sharded());
  ASSERT_EQ(checkpoint.shards().size(), 2u);
  EXPECT_EQ(checkpoint.shards()[0].path(), dir_ / "s1.safetensors");
  EXPECT_EQ(checkpoint.shards()[1].path(), dir_ / "s2.safetensors");
  const TensorRef* z = checkpoint.find("z");
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(z->file, &checkpoint.shards()[1]);
  EXPECT_EQ(static_cast<char>(z->file->data(*z->info)[0]), 'a');
  EXPECT_EQ(static_cast<char>(checkpoint.find("y")->file->data(*checkpoint.find("y")->info)[0]), 'b');
  EXPECT_EQ(checkpoint.total_tensor_bytes(), 3u);

  Checkpoint moved = std::move(checkpoint);  // references stay valid
  EXPECT_EQ(moved.find("z")->file, &moved.shards()[1]);
}

TEST_F(CheckpointDir, DirectoryErrors) {
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()),
                       "no model.safetensors or model.safetensors.index.json in this directory", dir_.path().string());
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_ / "absent"), "does not exist", (dir_ / "absent").string());
  test::write_bytes(dir_ / "file", "x");
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_ / "file"), "not a directory", (dir_ / "file").string());
  test::write_bytes(dir_ / kSingleFileName, "abc");  // shard errors come from the reader
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()), "too short", (dir_ / kSingleFileName).string());
}

TEST_F(CheckpointDir, MalformedIndex) {
  test::write_bytes(dir_ / kIndexFileName, "{");
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()), "checkpoint index is not valid JSON", index_path());
  test::write_bytes(dir_ / kIndexFileName, R"({"metadata": {"total_size": 1e999}})");
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()), "checkpoint index is not valid JSON: number overflow",
                       index_path());
  test::write_bytes(dir_ / kIndexFileName, R"({"metadata": {}})");
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()), "checkpoint index has no weight_map object", index_path());
  test::write_bytes(dir_ / kIndexFileName, R"({"metadata": 3, "weight_map": {}})");
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()), "metadata field that is not an object", index_path());
  write_index(dir_.path(), "{}");
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()), "empty weight_map", index_path());
  write_index(dir_.path(), R"({"x": 1})");
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()), "weight_map entry for tensor 'x' is not a string", index_path());
  for (const char* shard : {"../s1.safetensors", "sub/s1.safetensors", "..", ""}) {
    write_index(dir_.path(), std::string(R"({"x": ")") + shard + "\"}");
    EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()),
                         "weight_map puts tensor 'x' in '" + std::string(shard) + "', which is not a plain file name",
                         index_path());
  }
}

TEST_F(CheckpointDir, MissingShard) {
  write_sharded();
  std::filesystem::remove(dir_ / "s2.safetensors");
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()),
                       "shard s2.safetensors does not exist but model.safetensors.index.json names it",
                       (dir_ / "s2.safetensors").string());
}

TEST_F(CheckpointDir, IndexNamesTensorAbsentFromShard) {
  write_sharded();
  write_index(dir_.path(),
              R"({"x": "s1.safetensors", "y": "s1.safetensors", "z": "s2.safetensors", "w": "s2.safetensors"})");
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()),
                       "index names tensor 'w' in shard s2.safetensors but s2.safetensors does not contain it",
                       index_path());
  // Pointing at the wrong shard is the same problem.
  write_index(dir_.path(), R"({"x": "s1.safetensors", "y": "s2.safetensors", "z": "s2.safetensors"})");
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()),
                       "index names tensor 'y' in shard s2.safetensors but s2.safetensors does not contain it",
                       index_path());
}

TEST_F(CheckpointDir, TensorMissingFromIndex) {
  write_sharded();
  write_index(dir_.path(), R"({"x": "s1.safetensors", "z": "s2.safetensors"})");
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()),
                       "tensor 'y' in shard s1.safetensors is not listed in model.safetensors.index.json",
                       index_path());
}

TEST_F(CheckpointDir, TensorInTwoShards) {
  write_sharded();
  write_shard(dir_ / "s2.safetensors", {"z", "x"});
  EXPECT_UPCYCLE_ERROR(Checkpoint::open(dir_.path()), "tensor 'x' is in two shards: s1.safetensors and s2.safetensors",
                       (dir_ / "s2.safetensors").string());
}

}  // namespace
}  // namespace upcycle
