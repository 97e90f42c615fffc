// `upcycle init` + `upcycle inspect` end to end: every family round-trips with no problems, the
// report's numbers match hand arithmetic, output is byte-identical for a seed whatever the thread
// count, sharded and fused-layout files hold exactly the values of the plain per-expert file, and the
// written values are the ones the documented init rule gives.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "core/dtype.h"
#include "core/json.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "io/random_init.h"
#include "io/weight_table.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;
using test::ScratchDir;

void init_ok(const std::vector<std::string>& args) {
  auto r = test::run_upcycle(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

Json inspect_json(const fs::path& dir) {
  auto r = test::run_upcycle({"inspect", "--json", dir.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return parse_json(r.out, "inspect output", dir.string());
}

// Bytes of a canonical weight, wherever the layout puts it.
std::string weight_bytes(const Checkpoint& ckpt, const WeightTable& table, const WeightSpec& spec) {
  const WeightLocation* loc = table.locate(spec.name);
  EXPECT_NE(loc, nullptr) << spec.name;
  const TensorRef* ref = ckpt.find(loc->tensor);
  auto data = ref->file->data(*ref->info);
  size_t elem = dtype_size(ref->info->dtype);
  return std::string(reinterpret_cast<const char*>(data.data()) + loc->element_offset * elem, shape_numel(spec.shape) * elem);
}

WeightTable table_of(const Checkpoint& ckpt, const ModelConfig& config) {
  std::map<std::string, Shape, std::less<>> shapes;
  for (const auto& [name, ref] : ckpt.tensors()) shapes[name] = ref.info->shape;
  return WeightTable::build(config, shapes);
}

class EveryFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryFamily, InitThenInspectRoundTrips) {
  ScratchDir dir;
  init_ok({"init", "--arch", GetParam(), "--preset", "tiny", "--seed", "3", (dir / "m").string()});
  Json r = inspect_json(dir / "m");
  EXPECT_EQ(r["family"], GetParam());
  EXPECT_TRUE(r["problems"].empty()) << r["problems"].dump();
  EXPECT_EQ(r["layers"], 2);
  EXPECT_EQ(r["hidden_size"], 64);
  EXPECT_EQ(r["vocab_size"], 512);
  EXPECT_EQ(r["attention"]["heads"], 4);
  EXPECT_EQ(r["attention"]["kv_heads"], 2);
  EXPECT_EQ(r["attention"]["head_dim"], 16);
  // The config re-read through the library agrees with what init was asked for.
  ModelConfig c = read_model_config(dir / "m");
  EXPECT_EQ(family_model_type(c.family), GetParam());
  EXPECT_EQ(c.dtype, DType::kBF16);
  uint64_t total = 0;
  for (const auto& w : expected_weights(c)) total += shape_numel(w.shape);
  EXPECT_EQ(r["parameters"]["total"].get<uint64_t>(), total);
  EXPECT_EQ(r["tensor_bytes"].get<uint64_t>(), total * 2);  // bf16
  if (family_is_moe(c.family)) {
    EXPECT_EQ(r["moe"]["experts"], 4);
    EXPECT_EQ(r["moe"]["top_k"], 2);
    EXPECT_LT(r["parameters"]["active_per_token"].get<uint64_t>(), total);
  } else {
    EXPECT_TRUE(r["moe"].is_null());
    EXPECT_EQ(r["parameters"]["active_per_token"].get<uint64_t>(), total);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, EveryFamily,
                         ::testing::Values("llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe",
                                           "dots1"));

TEST(Init, HandComputedParameterCountsForTinyLlama) {
  ScratchDir dir;
  init_ok({"init", "--arch", "llama", "--preset", "tiny", (dir / "m").string()});
  Json r = inspect_json(dir / "m");
  // V=512 D=64 L=2 H=4 KV=2 S=16 F=192, untied:
  // per layer: norms 2*64, q 64*64, k 32*64, v 32*64, o 64*64, mlp 3*192*64 = 128+4096+2048+2048+4096+36864
  const uint64_t layer = 128 + 4096 + 2048 + 2048 + 4096 + 36864;
  const uint64_t expected = 512 * 64 * 2 + 64 + 2 * layer;
  EXPECT_EQ(r["parameters"]["total"].get<uint64_t>(), expected);
  EXPECT_EQ(r["parameters"]["embedding"].get<uint64_t>(), 512u * 64 * 2);
}

TEST(Init, SameSeedSameBytesAnyThreadCount) {
  ScratchDir dir;
  init_ok({"init", "--arch", "qwen2_moe", "--preset", "tiny", "--seed", "7", "--threads", "1", (dir / "a").string()});
  init_ok({"init", "--arch", "qwen2_moe", "--preset", "tiny", "--seed", "7", "--threads", "2", (dir / "b").string()});
  init_ok({"init", "--arch", "qwen2_moe", "--preset", "tiny", "--seed", "8", (dir / "c").string()});
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors"})
    EXPECT_EQ(test::read_bytes(dir / "a" / f), test::read_bytes(dir / "b" / f)) << f;
  EXPECT_NE(test::read_bytes(dir / "a" / "model.safetensors"), test::read_bytes(dir / "c" / "model.safetensors"));
}

TEST(Init, ShardedAndFusedHoldTheSameWeights) {
  ScratchDir dir;
  init_ok({"init", "--arch", "mixtral", "--preset", "tiny", "--seed", "5", (dir / "plain").string()});
  init_ok({"init", "--arch", "mixtral", "--preset", "tiny", "--seed", "5", "--max-shard-size", "100KB",
           (dir / "sharded").string()});
  init_ok({"init", "--arch", "mixtral", "--preset", "tiny", "--seed", "5", "--expert-layout", "fused",
           (dir / "fused").string()});
  ModelConfig config = read_model_config(dir / "plain");
  Checkpoint plain = Checkpoint::open(dir / "plain"), sharded = Checkpoint::open(dir / "sharded"),
             fused = Checkpoint::open(dir / "fused");
  EXPECT_FALSE(plain.sharded());
  EXPECT_TRUE(sharded.sharded());
  EXPECT_GT(sharded.shards().size(), 2u);
  WeightTable tp = table_of(plain, config), ts = table_of(sharded, config), tf = table_of(fused, config);
  EXPECT_EQ(tp.layout(), ExpertLayout::kPerExpert);
  EXPECT_EQ(tf.layout(), ExpertLayout::kFused);
  ASSERT_TRUE(tf.ok()) << tf.problems()[0];
  EXPECT_NE(fused.find("model.layers.0.mlp.experts.gate_up_proj"), nullptr);
  for (const auto& spec : tp.weights()) {
    std::string expected = weight_bytes(plain, tp, spec);
    EXPECT_EQ(weight_bytes(sharded, ts, spec), expected) << spec.name;
    EXPECT_EQ(weight_bytes(fused, tf, spec), expected) << spec.name;
  }
  EXPECT_TRUE(inspect_json(dir / "fused")["problems"].empty());
  EXPECT_EQ(inspect_json(dir / "fused")["expert_layout"], "fused");
}

// Independent check of what init writes: each element is the documented rule, rounded to bf16, and
// the normal draws have the configured scale.
TEST(Init, ValuesFollowTheInitRule) {
  ScratchDir dir;
  init_ok({"init", "--arch", "qwen2", "--preset", "tiny", "--seed", "11", (dir / "m").string()});
  ModelConfig config = read_model_config(dir / "m");
  Checkpoint ckpt = Checkpoint::open(dir / "m");
  WeightTable table = table_of(ckpt, config);
  for (const auto& spec : table.weights()) {
    std::string bytes = weight_bytes(ckpt, table, spec);
    const auto* bits = reinterpret_cast<const uint16_t*>(bytes.data());
    const uint64_t n = shape_numel(spec.shape);
    double sum = 0, sum_sq = 0;
    for (uint64_t i = 0; i < n; ++i) {
      float v = bf16_to_f32(bits[i]);
      if (i % 97 == 0) {
        ASSERT_EQ(bits[i], f32_to_bf16(random_init_value(config, spec, 11, i))) << spec.name << "[" << i << "]";
      }
      sum += v;
      sum_sq += double(v) * v;
    }
    if (spec.role == WeightRole::kAttnNorm || spec.role == WeightRole::kFinalNorm) {
      EXPECT_EQ(sum, double(n)) << spec.name;
    }
    if (spec.role == WeightRole::kQBias) {
      EXPECT_EQ(sum_sq, 0.0) << spec.name;
    }
    if (spec.role == WeightRole::kGateProj) {
      double mean = sum / n, std = std::sqrt(sum_sq / n - mean * mean);
      EXPECT_NEAR(mean, 0.0, 0.002) << spec.name;
      EXPECT_NEAR(std, config.initializer_range, 0.002) << spec.name;
    }
  }
}

TEST(Inspect, TextReportNamesTheEssentials) {
  ScratchDir dir;
  init_ok({"init", "--arch", "qwen2_moe", "--preset", "tiny", (dir / "m").string()});
  auto r = test::run_upcycle({"inspect", "--tensors", (dir / "m").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"qwen2_moe", "Qwen2MoeForCausalLM", "4 experts, top-2", "shared expert", "not renormalised",
                        "model.layers.1.mlp.shared_expert_gate.weight", "problems        none"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

// Opening reads headers only: a checkpoint with 256 GB of (sparse) tensor data is inspected under a
// 5-second CPU limit; touching the data would take minutes.
TEST(Inspect, ReadsNoTensorData) {
  ScratchDir dir;
  init_ok({"init", "--arch", "llama", "--preset", "tiny", (dir / "m").string()});
  Json config = read_json_file(dir / "m" / "config.json", "config");
  config["vocab_size"] = int64_t{1} << 30;
  test::write_bytes(dir / "m" / "config.json", config.dump());
  ModelConfig c = read_model_config(dir / "m");
  std::string header = "{";
  uint64_t offset = 0;
  for (const auto& t : disk_tensors(c, ExpertLayout::kPerExpert)) {
    uint64_t bytes = shape_numel(t.shape) * 2;
    header += (offset ? "," : "") + Json(t.name).dump() + R"(:{"dtype":"BF16","shape":)" + Json(t.shape).dump() +
              R"(,"data_offsets":[)" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += "}";
  fs::path file = dir / "m" / "model.safetensors";
  test::write_safetensors_raw(file, header, "");
  fs::resize_file(file, 8 + header.size() + offset);  // sparse: the data is a hole
  ASSERT_GT(offset, uint64_t{256} << 30);
  auto r = test::run_upcycle({"inspect", "--json", (dir / "m").string()}, {.cpu_seconds = 5});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json report = parse_json(r.out, "inspect output", file.string());
  EXPECT_EQ(report["tensor_bytes"].get<uint64_t>(), offset);
  EXPECT_TRUE(report["problems"].empty());
}

TEST(Cli, HelpAndUsage) {
  auto top = test::run_upcycle({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("inspect"), std::string::npos);
  auto bare = test::run_upcycle({});
  EXPECT_EQ(bare.exit_code, 2);
  auto init_help = test::run_upcycle({"init", "--help"});
  EXPECT_EQ(init_help.exit_code, 0);
  for (const char* s : {"--arch", "--preset", "--seed", "--dtype", "[default: bf16]", "--max-shard-size", "examples:"})
    EXPECT_NE(init_help.out.find(s), std::string::npos) << s;
  auto unknown = test::run_upcycle({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("frobnicate"), std::string::npos);
}

}  // namespace
}  // namespace upcycle
