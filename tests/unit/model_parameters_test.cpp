// Parameter loading: stores laid out in WeightTable order; checkpoints written by `upcycle init`
// in bf16 / f16 / f32 load to exactly the values the documented init rule gives after rounding to
// the file dtype, for all seven families; fused and per-expert MoE checkpoints load identical
// stores; checkpoints that do not match their config are Errors naming the directory; typed views
// (dense and MoE) point at the weights their names say.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "backend/host_memory.h"
#include "core/dtype.h"
#include "io/checkpoint.h"
#include "io/random_init.h"
#include "model/model_views.h"
#include "model/parameters.h"
#include "support/expect_error.h"
#include "support/test_support.h"

namespace upcycle::model {
namespace {
namespace fs = std::filesystem;

void init(const fs::path& dir, const std::string& arch, const std::string& dtype, const std::string& layout = "") {
  std::vector<std::string> args = {"init", "--arch", arch, "--preset", "tiny", "--seed", "5", "--dtype", dtype};
  if (!layout.empty()) args.insert(args.end(), {"--expert-layout", layout});
  args.push_back(dir.string());
  auto r = test::run_upcycle(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TensorStore load(const fs::path& dir, ModelConfig* config_out = nullptr) {
  ModelConfig config = read_model_config(dir);
  Checkpoint ckpt = Checkpoint::open(dir);
  WeightTable table = checked_weight_table(config, ckpt);
  TensorStore store = TensorStore::for_config(config, backend::host_memory());
  load_parameters(store, ckpt, table);
  if (config_out) *config_out = config;
  return store;
}

float round_to(DType dtype, float v) {
  if (dtype == DType::kBF16) return bf16_to_f32(f32_to_bf16(v));
  if (dtype == DType::kF16) return f16_to_f32(f32_to_f16(v));
  return v;
}

class ModelLoadFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelLoadFamily, InitBf16LoadsExactValues) {
  test::ScratchDir dir;
  init(dir / "m", GetParam(), "bf16");
  ModelConfig config;
  TensorStore store = load(dir / "m", &config);
  ASSERT_EQ(store.specs().size(), expected_weights(config).size());
  size_t nonzero = 0;
  for (size_t i = 0; i < store.specs().size(); ++i) {
    const WeightSpec& spec = store.specs()[i];
    ASSERT_EQ(spec.name, expected_weights(config)[i].name);
    auto v = store.view(i);
    for (size_t e = 0; e < v.size(); ++e) {
      const float want = round_to(DType::kBF16, random_init_value(config, spec, 5, e));
      ASSERT_EQ(std::memcmp(&v[e], &want, sizeof(float)), 0) << spec.name << "[" << e << "]: " << v[e] << " vs " << want;
      nonzero += v[e] != 0.0f;
    }
  }
  EXPECT_GT(nonzero, store.size() / 2);
}

INSTANTIATE_TEST_SUITE_P(All, ModelLoadFamily,
                         ::testing::Values("llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe"));

TEST(ModelLoad, F16AndF32LoadExactValues) {
  for (std::string dtype : {"f16", "f32"}) {
    test::ScratchDir dir;
    init(dir / "m", "qwen2", dtype);
    ModelConfig config;
    TensorStore store = load(dir / "m", &config);
    const DType dt = dtype == "f16" ? DType::kF16 : DType::kF32;
    for (size_t i = 0; i < store.specs().size(); ++i) {
      auto v = store.view(i);
      for (size_t e = 0; e < v.size(); ++e)
        ASSERT_EQ(v[e], round_to(dt, random_init_value(config, store.specs()[i], 5, e))) << store.specs()[i].name;
    }
  }
}

TEST(ModelLoad, FusedAndPerExpertLoadIdenticalStores) {
  for (std::string arch : {"mixtral", "qwen2_moe", "qwen3_moe"}) {
    test::ScratchDir dir;
    init(dir / "per", arch, "bf16", "per-expert");
    init(dir / "fused", arch, "bf16", "fused");
    TensorStore a = load(dir / "per"), b = load(dir / "fused");
    ASSERT_EQ(a.size(), b.size()) << arch;
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << arch;
    // Experts differ from each other (a wrong fused offset would repeat expert 0).
    ModelConfig config = read_model_config(dir / "fused");
    const std::string e0 = arch == "mixtral" ? "model.layers.0.block_sparse_moe.experts.0.w3.weight"
                                             : "model.layers.0.mlp.experts.0.up_proj.weight";
    std::string e1 = e0;
    e1.replace(e1.find("experts.0"), 9, "experts.1");
    EXPECT_NE(std::memcmp(b.at(e0), b.at(e1), 16 * sizeof(float)), 0) << arch;
  }
}

TEST(ModelLoad, MismatchedCheckpointIsAnError) {
  test::ScratchDir dir;
  init(dir / "m", "llama", "f32");
  ModelConfig config = read_model_config(dir / "m");
  config.intermediate_size += 1;
  Checkpoint ckpt = Checkpoint::open(dir / "m");
  EXPECT_UPCYCLE_ERROR(checked_weight_table(config, ckpt), "mlp.gate_proj.weight has shape", (dir / "m").string());
}

TEST(ModelViews, DenseViewsPointAtNamedWeights) {
  test::ScratchDir dir;
  init(dir / "m", "qwen3", "f32");
  ModelConfig config;
  TensorStore store = load(dir / "m", &config);
  auto v = model_views(std::as_const(store), config);
  ASSERT_EQ(v.layers.size(), 2u);
  EXPECT_EQ(v.embed_VD, store.at("model.embed_tokens.weight"));
  EXPECT_EQ(v.lm_head_VD, config.tie_word_embeddings ? v.embed_VD : store.at("lm_head.weight"));
  EXPECT_EQ(v.layers[1].q_norm_S, store.at("model.layers.1.self_attn.q_norm.weight"));
  EXPECT_EQ(v.layers[1].down_DF, store.at("model.layers.1.mlp.down_proj.weight"));
  EXPECT_EQ(v.layers[0].q_bias_Q, nullptr);  // qwen3 has no q/k/v biases
}

TEST(ModelViews, MoeViewsPointAtExpertWeights) {
  test::ScratchDir dir;
  init(dir / "m", "qwen2_moe", "f32");
  ModelConfig config;
  TensorStore store = load(dir / "m", &config);
  MoeWeights w = moe_weight_views(store, config, 1);
  ASSERT_EQ(w.gate_FD.size(), size_t(config.num_experts));
  EXPECT_EQ(w.router_ED, store.at("model.layers.1.mlp.gate.weight"));
  EXPECT_EQ(w.up_FD[3], store.at("model.layers.1.mlp.experts.3.up_proj.weight"));
  EXPECT_EQ(w.down_DF[2], store.at("model.layers.1.mlp.experts.2.down_proj.weight"));
  EXPECT_EQ(w.shared_up_FsD, store.at("model.layers.1.mlp.shared_expert.up_proj.weight"));
  EXPECT_EQ(w.shared_expert_gate_1D, store.at("model.layers.1.mlp.shared_expert_gate.weight"));
  TensorStore grads = TensorStore::for_config(config, backend::host_memory());
  MoeGrads g = moe_grad_views(grads, config, 1);
  EXPECT_EQ(g.gate_FD[0], grads.at("model.layers.1.mlp.experts.0.gate_proj.weight"));
}

}  // namespace
}  // namespace upcycle::model
