// `upcycle convert --recipe FILE.yaml OUT_DIR` (mergekit-moe YAML) through the binary: a random-gate
// sparse upcycle (every expert from the base) preserves the function and passes --verify; a
// clown-car MoE with `gate_mode: hidden` takes each expert's FFN byte for byte from its source, the
// rest from the base, and writes unit-norm router rows (L2-normalised hidden states); competing
// flags and bad YAML are one-line errors with no output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/json.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "support/mergekit_test_support.h"
#include "support/checkpoint_test_support.h"
#include "support/test_support.h"
#include "support/tokenizer_test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;
using test::ScratchDir;
using test::tensor_bytes;

void init_model(const fs::path& dir, const std::string& seed, const std::string& arch = "llama") {
  auto r = test::run_upcycle({"init", "--arch", arch, "--preset", "tiny", "--vocab-size", "300", "--dtype", "f32",
                              "--seed", seed, dir.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

double l2_norm(const float* v, int64_t n) {
  double n2 = 0;
  for (int64_t i = 0; i < n; ++i) n2 += double(v[i]) * v[i];
  return std::sqrt(n2);
}

TEST(ConvertRecipe, RandomGateSparseUpcycleIsFunctionPreserving) {
  ScratchDir dir;
  init_model(dir / "base", "1");
  test::write_bytes(dir / "r.yaml",
                    "base_model: base\ngate_mode: random\nseed: 7\nexperts:\n"
                    "  - source_model: base\n  - source_model: base\n  - source_model: base\n  - source_model: base\n");
  auto r = test::run_upcycle({"convert", "--recipe", (dir / "r.yaml").string(), (dir / "moe").string(), "--verify",
                              "--verify-tokens", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("verify: ok"), std::string::npos) << r.out;
  ModelConfig c = read_model_config(dir / "moe");
  EXPECT_EQ(c.family, Family::kMixtral);
  EXPECT_EQ(c.num_experts, 4);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.raw["upcycle_recipe"]["preset"], "mergekit");
}

TEST(ConvertRecipe, HiddenGateClownCarTakesExpertsFromTheirSources) {
  ScratchDir dir;
  init_model(dir / "base", "1");
  init_model(dir / "code", "2");
  init_model(dir / "math", "3");
  test::write_byte_tokenizer(dir / "base");
  test::write_bytes(dir / "c.yaml",
                    "base_model: base\ngate_mode: hidden\nexperts:\n"
                    "  - source_model: code\n    positive_prompts: [\"def f(x): return x\", \"int main()\"]\n"
                    "    negative_prompts: [\"2 + 2 = 4\"]\n"
                    "  - source_model: math\n    positive_prompts: [\"2 + 2 = 4\"]\n"
                    "  - source_model: base\n    positive_prompts: [\"Once upon a time\"]\n");
  auto out = dir / "moe";
  auto r = test::run_upcycle({"convert", "--recipe", (dir / "c.yaml").string(), out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  ModelConfig c = read_model_config(out);
  ASSERT_EQ(c.family, Family::kMixtral);
  ASSERT_EQ(c.num_experts, 3);
  const std::string l = "model.layers.1.";
  EXPECT_EQ(tensor_bytes(out, l + "block_sparse_moe.experts.0.w1.weight"), tensor_bytes(dir / "code", l + "mlp.gate_proj.weight"));
  EXPECT_EQ(tensor_bytes(out, l + "block_sparse_moe.experts.1.w2.weight"), tensor_bytes(dir / "math", l + "mlp.down_proj.weight"));
  EXPECT_EQ(tensor_bytes(out, l + "block_sparse_moe.experts.2.w3.weight"), tensor_bytes(dir / "base", l + "mlp.up_proj.weight"));
  EXPECT_EQ(tensor_bytes(out, l + "self_attn.q_proj.weight"), tensor_bytes(dir / "base", l + "self_attn.q_proj.weight"));
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
  // Router rows are L2-normalised directions, and differ between experts.
  const std::string router = tensor_bytes(out, l + "block_sparse_moe.gate.weight");
  const float* g = reinterpret_cast<const float*>(router.data());
  const int64_t D = c.hidden_size;
  for (int e = 0; e < 3; ++e) EXPECT_NEAR(l2_norm(g + e * D, D), 1.0, 1e-5) << "expert " << e;
  EXPECT_NE(std::string(router.data(), size_t(D) * 4), std::string(router.data() + D * 4, size_t(D) * 4));
}

std::vector<float> floats_of(const std::string& bytes) {
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

// Qwen writer: the shared expert is the base FFN with down_proj × residual_scale, and its sigmoid gate
// row comes from the shared expert's own prompts (cheap_embed: a unit vector).
TEST(ConvertRecipe, QwenSharedExpertGateFromPrompts) {
  ScratchDir dir;
  init_model(dir / "base", "1", "qwen2");
  init_model(dir / "code", "2", "qwen2");
  test::write_byte_tokenizer(dir / "base");
  test::write_bytes(dir / "q.yaml",
                    "base_model: base\narchitecture: qwen\ngate_mode: cheap_embed\nexperts_per_token: 1\nexperts:\n"
                    "  - source_model: code\n    positive_prompts: [\"def main():\"]\n"
                    "  - source_model: base\n    positive_prompts: [\"The sky\"]\n"
                    "shared_experts:\n  - source_model: base\n    positive_prompts: [\"The\", \"A\"]\n"
                    "    residual_scale: 0.1\n");
  auto out = dir / "moe";
  auto r = test::run_upcycle({"convert", "--recipe", (dir / "q.yaml").string(), out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  ModelConfig c = read_model_config(out);
  ASSERT_EQ(c.family, Family::kQwen2Moe);
  EXPECT_EQ(c.topk_norm, TopkNorm::kRenormalize);  // mergekit writes norm_topk_prob true
  const std::string l = "model.layers.0.mlp.";
  EXPECT_EQ(tensor_bytes(out, l + "shared_expert.up_proj.weight"), tensor_bytes(dir / "base", "model.layers.0.mlp.up_proj.weight"));
  auto down = floats_of(tensor_bytes(out, l + "shared_expert.down_proj.weight"));
  auto dense_down = floats_of(tensor_bytes(dir / "base", "model.layers.0.mlp.down_proj.weight"));
  ASSERT_EQ(down.size(), dense_down.size());
  for (size_t i = 0; i < down.size(); ++i) EXPECT_FLOAT_EQ(down[i], 0.1f * dense_down[i]) << i;
  auto gate = floats_of(tensor_bytes(out, l + "shared_expert_gate.weight"));
  EXPECT_NEAR(l2_norm(gate.data(), int64_t(gate.size())), 1.0, 1e-5);
}

// noise_scale and residual_scale on one expert: mergekit (moe/common.py noise_and_scale) adds the
// noise first and then scales, down_proj = (W + noise)·s. The noise is the same draw with and without
// the scale (same seed and stream), so in fp32 the scaled expert's down_proj is exactly s × the
// unscaled one; scaling first (W·s + noise, upcycle before the mergekit-moe side-by-side test) is not.
TEST(ConvertRecipe, ResidualScaleMultipliesTheNoisyExpert) {
  ScratchDir dir;
  init_model(dir / "base", "1");
  init_model(dir / "math", "2");
  auto convert = [&](const std::string& name, const std::string& residual) {
    test::write_bytes(dir / (name + ".yaml"),
                      "base_model: base\ngate_mode: random\nseed: 5\nexperts:\n  - source_model: base\n"
                      "  - source_model: math\n    noise_scale: 0.01\n" + residual);
    auto r = test::run_upcycle({"convert", "--recipe", (dir / (name + ".yaml")).string(), (dir / name).string()});
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  };
  convert("plain", "");
  convert("scaled", "    residual_scale: 0.3\n");
  const std::string e = "model.layers.1.block_sparse_moe.experts.1.";
  auto plain = floats_of(tensor_bytes(dir / "plain", e + "w2.weight"));
  auto scaled = floats_of(tensor_bytes(dir / "scaled", e + "w2.weight"));
  auto dense = floats_of(tensor_bytes(dir / "math", "model.layers.1.mlp.down_proj.weight"));
  ASSERT_EQ(plain.size(), scaled.size());
  ASSERT_EQ(plain.size(), dense.size());
  size_t noisy = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_EQ(scaled[i], plain[i] * 0.3f) << i;
    noisy += plain[i] != dense[i];
  }
  EXPECT_GT(noisy, plain.size() * 9 / 10);  // the noise is there
  // gate/up carry the same noise and no scale.
  EXPECT_EQ(tensor_bytes(dir / "plain", e + "w1.weight"), tensor_bytes(dir / "scaled", e + "w1.weight"));
}

// The prompt router inits also work without a mergekit YAML: --router-init hidden-avg --prompts FILE
// gives each MoE layer's router unit-norm rows, one per expert, on a copy-upcycled model.
TEST(ConvertRecipe, FlagDrivenPromptRouterInit) {
  ScratchDir dir;
  init_model(dir / "base", "1");
  test::write_byte_tokenizer(dir / "base");
  test::write_bytes(dir / "p.yaml",
                    "experts:\n  - positive_prompts: [\"for i in range(10):\"]\n"
                    "  - positive_prompts: [\"The cat sat\"]\n    negative_prompts: [\"x = 1\"]\n");
  auto out = dir / "moe";
  auto r = test::run_upcycle({"convert", (dir / "base").string(), out.string(), "--experts", "2", "--top-k", "1",
                              "--router-init", "hidden-avg", "--prompts", (dir / "p.yaml").string(), "--moe-layers",
                              "last:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  ModelConfig c = read_model_config(out);
  const int64_t D = c.hidden_size, L = c.num_hidden_layers;
  auto gate = floats_of(tensor_bytes(out, "model.layers." + std::to_string(L - 1) + ".mlp.gate.weight"));
  ASSERT_EQ(int64_t(gate.size()), 2 * D);
  EXPECT_NEAR(l2_norm(gate.data(), D), 1.0, 1e-5);
  EXPECT_NEAR(l2_norm(gate.data() + D, D), 1.0, 1e-5);
  EXPECT_EQ(c.raw["upcycle_recipe"]["router_init"], "given");

  auto missing = test::run_upcycle({"convert", (dir / "base").string(), (dir / "m2").string(), "--experts", "2",
                                    "--router-init", "hidden"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("needs --prompts"), std::string::npos) << missing.err;
  auto count = test::run_upcycle({"convert", (dir / "base").string(), (dir / "m3").string(), "--experts", "4",
                                  "--router-init", "hidden", "--prompts", (dir / "p.yaml").string()});
  EXPECT_EQ(count.exit_code, 2);
  EXPECT_NE(count.err.find("lists 2 experts, but --experts is 4"), std::string::npos) << count.err;
  EXPECT_FALSE(fs::exists(dir / "m2"));
  EXPECT_FALSE(fs::exists(dir / "m3"));
}

// --router-init kmeans --calibration FILE: on every MoE output family and partial layer selections,
// each MoE layer's router has E distinct rows of norm 0.02·√D (the rows themselves are checked against
// the engine's FFN inputs in kmeans_router_test and against transformers in test_hf_reads_convert.py),
// the seed changes them, copies still pass --verify, and the missing-input errors are one line, exit 2.
TEST(ConvertRecipe, KmeansRouterInitFromCalibrationText) {
  ScratchDir dir;
  test::write_bytes(dir / "calib.txt",
                    "def add(a, b):\n    return a + b\n\nThe quick brown fox jumps over the lazy dog. "
                    "Le chat est sur la table. 3 + 4 = 7; 12 * 12 = 144.\nfor i in range(10): print(i)\n");
  struct Case {
    std::string arch, format, layers;
    int64_t first, last;  // the MoE layers selected (the tiny model has 2)
  };
  for (const auto& [arch, format, layers, first, last] :
       std::vector<Case>{{"llama", "mixtral", "all", 0, 1}, {"llama", "qwen2_moe", "last:1", 1, 1},
                         {"qwen3", "qwen3_moe", "0", 0, 0}}) {
    SCOPED_TRACE(format);
    const fs::path base = dir / (arch + "_base");
    if (!fs::exists(base)) {
      init_model(base, "1", arch);
      test::write_byte_tokenizer(base);
    }
    const fs::path out = dir / format;
    auto r = test::run_upcycle({"convert", base.string(), out.string(), "--experts", "4", "--top-k", "1",
                                "--format", format, "--router-init", "kmeans", "--calibration",
                                (dir / "calib.txt").string(), "--moe-layers", layers, "--verify"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_NE(r.out.find("verify: ok"), std::string::npos) << r.out;
    ModelConfig c = read_model_config(out);
    const int64_t D = c.hidden_size;
    for (int64_t l = first; l <= last; ++l) {
      const std::string block = format == "mixtral" ? ".block_sparse_moe" : ".mlp";
      auto gate = floats_of(tensor_bytes(out, "model.layers." + std::to_string(l) + block + ".gate.weight"));
      ASSERT_EQ(int64_t(gate.size()), 4 * D);
      for (int64_t e = 0; e < 4; ++e) EXPECT_NEAR(l2_norm(gate.data() + e * D, D), 0.02 * std::sqrt(double(D)), 1e-5);
      for (int64_t e = 1; e < 4; ++e)
        EXPECT_FALSE(std::equal(gate.begin(), gate.begin() + D, gate.begin() + e * D)) << "rows 0 and " << e;
    }
  }
  const std::string base = (dir / "llama_base").string(), calib = (dir / "calib.txt").string();
  auto seeded = test::run_upcycle({"convert", base, (dir / "s2").string(), "--experts", "4", "--router-init",
                                   "kmeans:0.1", "--calibration", calib, "--seed", "2"});
  ASSERT_EQ(seeded.exit_code, 0) << seeded.err;
  const std::string gate = "model.layers." + std::to_string(read_model_config(dir / "s2").num_hidden_layers - 1) +
                           ".block_sparse_moe.gate.weight";
  auto g2 = floats_of(tensor_bytes(dir / "s2", gate)), g0 = floats_of(tensor_bytes(dir / "mixtral", gate));
  EXPECT_NEAR(l2_norm(g2.data(), int64_t(g2.size()) / 4), 0.1 * std::sqrt(double(g2.size() / 4)), 1e-4);
  EXPECT_NE(g2, g0);

  auto expect_error = [&](std::vector<std::string> args, const std::string& needle, const std::string& name) {
    std::vector<std::string> all = {"convert", base, (dir / name).string(), "--experts", "8"};
    all.insert(all.end(), args.begin(), args.end());
    auto e = test::run_upcycle(all);
    EXPECT_EQ(e.exit_code, 2) << e.err;
    EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << e.err;
    EXPECT_NE(e.err.find(needle), std::string::npos) << e.err;
    EXPECT_FALSE(fs::exists(dir / name));
  };
  expect_error({"--router-init", "kmeans"}, "needs --calibration", "e1");
  expect_error({"--router-init", "kmeans", "--calibration", (dir / "nope.txt").string()}, "nope.txt", "e2");
  expect_error({"--router-init", "kmeans", "--calibration", calib, "--calibration-tokens", "5"},
               "5 tokens, fewer than the 8 experts", "e3");
  expect_error({"--calibration", calib}, "--calibration needs --router-init kmeans", "e4");
  test::write_bytes(dir / "latin1.txt", "caf\xe9 au lait, cr\xe8me br\xfbl\xe9" "e");
  expect_error({"--router-init", "kmeans", "--calibration", (dir / "latin1.txt").string()}, "latin1.txt)", "e5");
}

// Every example YAML of tests/data/mergekit converts as written, and `upcycle inspect` finds no problem.
TEST(ConvertRecipe, EveryExampleYamlConverts) {
  const std::vector<std::pair<std::string, std::string>> examples = {{"clown_car_hidden.yaml", "mixtral"},
                                                                      {"sparse_upcycle_random.yaml", "mixtral"},
                                                                      {"qwen_shared_expert.yaml", "qwen2_moe"},
                                                                      {"btx_average.yaml", "mixtral"}};
  for (const auto& [name, family] : examples) {
    SCOPED_TRACE(name);
    ScratchDir dir;
    auto yaml = test::materialise_mergekit_example(name, dir.path(), test::ExampleWeights::kWithTokenizer);
    auto out = dir / "moe";
    auto r = test::run_upcycle({"convert", "--recipe", yaml.string(), out.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    auto i = test::run_upcycle({"inspect", "--json", out.string()});
    ASSERT_EQ(i.exit_code, 0) << i.err;
    Json j = parse_json(i.out, "inspect", out.string());
    EXPECT_TRUE(j["problems"].empty()) << j["problems"].dump();
    EXPECT_EQ(j["family"], family);
    if (name == "btx_average.yaml") {  // BTX: non-FFN weights are the mean over the four sources
      const std::string q = "model.layers.0.self_attn.q_proj.weight";
      auto got = floats_of(tensor_bytes(out, q));
      std::vector<double> mean(got.size(), 0.0);
      for (const char* src : {"llama-seed", "llama-math", "llama-code", "llama-wiki"}) {
        auto v = floats_of(tensor_bytes(dir / "models" / src, q));
        for (size_t k = 0; k < v.size(); ++k) mean[k] += v[k] / 4.0;
      }
      for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], mean[k], 1e-6) << k;
    }
  }
}

TEST(ConvertRecipe, CompetingFlagsAndBadYamlAreOneLineErrors) {
  ScratchDir dir;
  init_model(dir / "base", "1");
  test::write_bytes(dir / "r.yaml", "base_model: base\ngate_mode: random\nexperts:\n  - source_model: base\n");
  auto expect_error = [&](const std::vector<std::string>& args, const std::string& needle) {
    auto r = test::run_upcycle(args);
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_EQ(r.err.rfind("upcycle: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir / "moe"));
  };
  expect_error({"convert", "--recipe", (dir / "r.yaml").string(), (dir / "moe").string(), "--experts", "4"},
               "--experts does not combine with --recipe");
  expect_error({"convert", "--recipe", (dir / "r.yaml").string(), (dir / "base").string(), (dir / "moe").string()},
               "give only OUT_DIR");
  test::write_bytes(dir / "bad.yaml", "base_model: base\nexperts_per_token: 3\nexperts:\n  - source_model: base\n");
  expect_error({"convert", "--recipe", (dir / "bad.yaml").string(), (dir / "moe").string()}, "bad.yaml");
  expect_error({"convert", (dir / "base").string()}, "missing OUT_DIR");
}

}  // namespace
}  // namespace upcycle
