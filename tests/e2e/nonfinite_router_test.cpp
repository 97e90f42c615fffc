// A checkpoint whose router weights hold a NaN: `upcycle eval` and `upcycle train` must stop with one
// line `upcycle: error: MoE layer N: router score … is not finite …` and exit status 2 (the routing
// op's refusal reported as a user error naming the layer), not an internal-check crash; train leaves
// no checkpoint behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>

#include "core/json.h"
#include "support/test_support.h"
#include "support/train_test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

// Element `index` of F32 tensor `name` in a one-file safetensors checkpoint := NaN, in place.
void poison_f32(const fs::path& file, const std::string& name, size_t index) {
  std::string bytes = test::read_bytes(file);
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  const Json header = Json::parse(bytes.substr(8, header_size));
  ASSERT_TRUE(header.contains(name)) << name;
  ASSERT_EQ(header[name]["dtype"], "F32");
  const size_t at = 8 + header_size + header[name]["data_offsets"][0].get<size_t>() + 4 * index;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(bytes.data() + at, &nan, sizeof nan);
  test::write_bytes(file, bytes);
}

void expect_router_error(const test::RunResult& r, const std::string& layer) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("upcycle: error: MoE layer " + layer + ": router score ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("is not finite"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(NonFiniteRouter, EvalAndTrainStopWithAOneLineErrorNamingTheLayer) {
  test::ScratchDir dir;
  const fs::path model = dir / "moe";
  test::write_tiny_model(model, test::tiny_train_config(true), 7);  // Mixtral E=4 top-2, every layer MoE
  poison_f32(model / "model.safetensors", "model.layers.1.block_sparse_moe.gate.weight", 5);

  const std::vector<uint32_t> ids = test::cyclic_tokens(400, 11);
  std::string u32;
  for (uint32_t id : ids) u32.append(reinterpret_cast<const char*>(&id), 4);  // little-endian host
  test::write_bytes(dir / "val.u32", u32);
  expect_router_error(test::run_upcycle({"eval", model.string(), "--data", (dir / "val.u32").string(), "--seq-len",
                                         "8", "--threads", "1"}),
                      "1");

  test::write_dataset(dir / "data", "web", ids, {}, 11);
  const fs::path out = dir / "run";
  expect_router_error(test::run_upcycle({"train", "--model", model.string(), "--data", (dir / "data").string(),
                                         "--out", out.string(), "--steps", "3", "--micro-batch", "2", "--seq-len", "8",
                                         "--threads", "1"}),
                      "1");
  EXPECT_FALSE(fs::exists(out / "checkpoints") && !fs::is_empty(out / "checkpoints"));
}

}  // namespace
}  // namespace upcycle
