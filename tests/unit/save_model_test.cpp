// save_model: random parameters of tiny dense and MoE models (per-expert and fused layouts, sharded or
// not) written and loaded back through the ordinary loader come back bit for bit in F32; BF16/F16
// files hold the round-to-nearest-even values (hand-computed ties included); config.json states the
// file dtype; `inspect` finds nothing wrong with the directory.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/host_memory.h"
#include "core/dtype.h"
#include "io/checkpoint.h"
#include "io/checkpoint_report.h"
#include "model/load_model.h"
#include "model/save_model.h"
#include "support/model_test_support.h"
#include "support/test_support.h"

namespace upcycle::model {
namespace {
namespace fs = std::filesystem;
using test::ScratchDir;

struct Case {
  std::string name;
  ModelConfig config;
  ExpertLayout layout;
};

std::vector<Case> cases() {
  const ModelConfig llama = test::tiny_model_config(Family::kLlama);
  ModelConfig qwen2_tied = test::tiny_model_config(Family::kQwen2);  // q/k/v biases, tied lm_head
  qwen2_tied.tie_word_embeddings = true;
  ModelConfig qwen2_moe = test::moe_twin(test::tiny_model_config(Family::kQwen2), Family::kQwen2Moe, 4, 2);
  qwen2_moe.shared_expert_intermediate_size = 6;
  std::vector<Case> out{{"llama", llama, ExpertLayout::kPerExpert}, {"qwen2_tied", qwen2_tied, ExpertLayout::kFused}};
  for (ExpertLayout layout : {ExpertLayout::kPerExpert, ExpertLayout::kFused}) {
    const std::string suffix = layout == ExpertLayout::kFused ? "_fused" : "_per_expert";
    out.push_back({"mixtral" + suffix, test::moe_twin(llama, Family::kMixtral, 4, 2), layout});
    out.push_back({"qwen3_moe" + suffix,
                   test::moe_twin(test::tiny_model_config(Family::kQwen3), Family::kQwen3Moe, 4, 2), layout});
    out.push_back({"qwen2_moe" + suffix, qwen2_moe, layout});
  }
  return out;
}

TensorStore random_params(const ModelConfig& config, uint64_t seed) {
  TensorStore store = TensorStore::for_config(config, backend::host_memory());
  test::fill_random(store, seed, 0.5f);
  return store;
}

// The parameters the ordinary loader reads back from `dir`, with the config it reads there.
TensorStore load_back(const fs::path& dir) {
  auto be = backend::make_backend(backend::BackendKind::kCpu);
  const ModelConfig config = read_model_config(dir);
  auto transformer = load_transformer(config, dir, *be);
  return transformer->params().copy_to(backend::host_memory());  // outlives the transformer's backend
}

void expect_inspect_clean(const fs::path& dir, const std::string& layout, const std::string& torch_dtype) {
  const Json report = inspect_checkpoint(dir, TensorListing::kOmit);
  EXPECT_TRUE(report["problems"].empty()) << report["problems"].dump();
  EXPECT_EQ(report["expert_layout"], layout);
  EXPECT_EQ(report["config_dtype"], torch_dtype);
}

TEST(SaveModel, F32RoundTripsBitForBit) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    ScratchDir scratch;
    const fs::path dir = scratch / "model";
    fs::create_directory(dir);
    const TensorStore params = random_params(c.config, 11);
    SaveModelOptions options;
    options.layout = c.layout;
    options.metadata = {{"upcycle_step", "42"}};
    const auto files = save_model(c.config, params, dir, options);
    EXPECT_EQ(files, (std::vector<std::string>{"config.json", kSingleFileName}));

    const ModelConfig reread = read_model_config(dir);
    EXPECT_EQ(reread.dtype, DType::kF32);
    Json want = model_config_to_json(c.config), got = model_config_to_json(reread);
    EXPECT_EQ(got, want);  // every modelled key survives (dtype was F32 already)

    const TensorStore loaded = load_back(dir);
    ASSERT_EQ(loaded.size(), params.size());
    EXPECT_EQ(std::memcmp(loaded.data(), params.data(), params.size() * sizeof(float)), 0);

    const Checkpoint ckpt = Checkpoint::open(dir);
    EXPECT_EQ(ckpt.shards()[0].metadata().at("upcycle_step"), "42");
    EXPECT_EQ(ckpt.shards()[0].metadata().at("format"), "pt");
    for (const auto& [name, ref] : ckpt.tensors()) EXPECT_EQ(ref.info->dtype, DType::kF32) << name;
    const bool moe = c.config.is_moe();
    const bool fused = moe && c.layout == ExpertLayout::kFused;
    EXPECT_EQ(ckpt.find("model.layers.0.mlp.experts.gate_up_proj") != nullptr, fused);
    expect_inspect_clean(dir, moe ? std::string(expert_layout_name(c.layout)) : "none", "float32");
  }
}

TEST(SaveModel, ShardedFilesLoadTheSameValues) {
  const ModelConfig config = test::moe_twin(test::tiny_model_config(Family::kLlama), Family::kMixtral, 4, 2);
  ScratchDir scratch;
  const fs::path dir = scratch / "model";
  fs::create_directory(dir);
  const TensorStore params = random_params(config, 5);
  SaveModelOptions options;
  options.layout = ExpertLayout::kFused;
  options.max_shard_bytes = 2048;
  const auto files = save_model(config, params, dir, options);
  ASSERT_GT(files.size(), 3u);
  EXPECT_EQ(files.front(), "config.json");
  EXPECT_EQ(files.back(), kIndexFileName);
  EXPECT_TRUE(Checkpoint::open(dir).sharded());
  const TensorStore loaded = load_back(dir);
  EXPECT_EQ(std::memcmp(loaded.data(), params.data(), params.size() * sizeof(float)), 0);
  expect_inspect_clean(dir, "fused", "float32");
}

// Ties and near-ties at 1.0 for bf16 (8 significant bits: spacing 2^-7 above 1) and f16 (11: 2^-10).
struct Rounding {
  float in;
  float bf16;
  float f16;
};
const Rounding kRoundings[] = {
    {1.0f + 0x1p-8f, 1.0f, 1.0f + 0x1p-8f},                     // bf16 tie → even (1.0)
    {1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-6f, 1.0f + 3 * 0x1p-8f},    // bf16 tie → even (up)
    {1.0f + 0x1p-8f + 0x1p-20f, 1.0f + 0x1p-7f, 1.0f + 0x1p-8f},  // just above the bf16 tie; f16 rounds down
    {-(1.0f + 0x1p-11f), -1.0f, -1.0f},                         // f16 tie → even (1.0)
    {1.0f + 3 * 0x1p-11f, 1.0f, 1.0f + 0x1p-9f},                // f16 tie → even (up)
};

TEST(SaveModel, HalfPrecisionFilesRoundToNearestEven) {
  for (const ModelConfig& config :
       {test::tiny_model_config(Family::kLlama),
        test::moe_twin(test::tiny_model_config(Family::kQwen3), Family::kQwen3Moe, 4, 2)}) {
    for (DType dtype : {DType::kBF16, DType::kF16}) {
      SCOPED_TRACE(std::string(family_model_type(config.family)) + " " + std::string(dtype_name(dtype)));
      ScratchDir scratch;
      const fs::path dir = scratch / "model";
      fs::create_directory(dir);
      TensorStore params = random_params(config, 3);
      float* embed = params.at("model.embed_tokens.weight");
      for (size_t i = 0; i < std::size(kRoundings); ++i) embed[i] = kRoundings[i].in;
      SaveModelOptions options;
      options.dtype = dtype;
      options.layout = ExpertLayout::kFused;
      save_model(config, params, dir, options);

      EXPECT_EQ(read_model_config(dir).dtype, dtype);
      const Checkpoint ckpt = Checkpoint::open(dir);
      for (const auto& [name, ref] : ckpt.tensors()) EXPECT_EQ(ref.info->dtype, dtype) << name;
      const TensorStore loaded = load_back(dir);
      ASSERT_EQ(loaded.size(), params.size());
      const float* got_embed = loaded.at("model.embed_tokens.weight");
      for (size_t i = 0; i < std::size(kRoundings); ++i)
        EXPECT_EQ(got_embed[i], dtype == DType::kBF16 ? kRoundings[i].bf16 : kRoundings[i].f16) << i;
      size_t mismatches = 0;
      for (size_t i = 0; i < params.size(); ++i) {
        const float x = params.data()[i];
        const float want = dtype == DType::kBF16 ? bf16_to_f32(f32_to_bf16(x)) : f16_to_f32(f32_to_f16(x));
        mismatches += std::memcmp(&want, loaded.data() + i, sizeof(float)) != 0;
      }
      EXPECT_EQ(mismatches, 0u);
      expect_inspect_clean(dir, config.is_moe() ? "fused" : "none", std::string(dtype_torch_name(dtype)));
    }
  }
}

}  // namespace
}  // namespace upcycle::model
