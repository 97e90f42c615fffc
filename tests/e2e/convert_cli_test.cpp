// `upcycle convert` through the binary: --verify on a function-preserving recipe passes and prints
// the per-layer table, the output passes `upcycle inspect`, presets apply and explicit flags
// override them, flag errors and refusals are one `upcycle: error:` line with exit 2 and no output.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "core/json.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;
using test::ScratchDir;

fs::path tiny(const ScratchDir& dir, const std::string& arch) {
  auto r = test::run_upcycle({"init", "--arch", arch, "--preset", "tiny", "--dtype", "f32", "--seed", "1",
                              (dir / arch).string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return dir / arch;
}

void expect_user_error(const test::RunResult& r, const std::string& needle, const fs::path& out) {
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_EQ(r.err.rfind("upcycle: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

TEST(ConvertCli, VerifyPassesForVirtualGroupsAndInspectIsClean) {
  ScratchDir dir;
  auto dense = tiny(dir, "llama");
  auto out = dir / "moe";
  auto r = test::run_upcycle({"convert", dense.string(), out.string(), "--experts", "8", "--granularity", "2",
                              "--top-k", "4", "--verify", "--verify-tokens", "16"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("function-preserving"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verify: ok"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layer"), std::string::npos);
  auto i = test::run_upcycle({"inspect", "--json", out.string()});
  ASSERT_EQ(i.exit_code, 0) << i.err;
  Json j = parse_json(i.out, "inspect", out.string());
  EXPECT_TRUE(j["problems"].empty()) << j["problems"].dump();
  EXPECT_EQ(j["family"], "mixtral");
}

TEST(ConvertCli, PresetAppliesAndExplicitFlagsOverride) {
  ScratchDir dir;
  auto dense = tiny(dir, "llama");
  auto r = test::run_upcycle({"convert", dense.string(), (dir / "k").string(), "--preset", "komatsuzaki2022",
                              "--experts", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ModelConfig c = read_model_config(dir / "k");
  EXPECT_EQ(c.family, Family::kQwen2Moe);  // every:2:1 on 2 layers: only layer 1 is MoE
  EXPECT_EQ(c.num_experts, 4);             // explicit flag beats the preset's 32
  EXPECT_EQ(c.mlp_only_layers, std::vector<int64_t>{0});
  EXPECT_EQ(c.topk_norm, TopkNorm::kNone);
  EXPECT_DOUBLE_EQ(c.router_aux_loss_coef, 0.01);
  EXPECT_EQ(c.raw["upcycle_recipe"]["preset"], "komatsuzaki2022");
  // drop-upcycling: verify reports the recipe as not function-preserving and still succeeds.
  auto d = test::run_upcycle({"convert", dense.string(), (dir / "du").string(), "--preset", "drop-upcycling",
                              "--experts", "4", "--verify", "--verify-tokens", "8"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_NE(d.out.find("not function-preserving"), std::string::npos) << d.out;
}

TEST(ConvertCli, SeveralSourcesFromTheCommandLine) {
  ScratchDir dir;
  auto a = tiny(dir, "llama");
  auto b = dir / "b";
  ASSERT_EQ(test::run_upcycle({"init", "--arch", "llama", "--preset", "tiny", "--dtype", "f32", "--seed", "2", b.string()}).exit_code, 0);
  auto r = test::run_upcycle({"convert", a.string(), (dir / "btx").string(), "--preset", "btx", "--experts", "4",
                              "--expert-sources", a.string() + "," + b.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json recipe = read_model_config(dir / "btx").raw["upcycle_recipe"];
  EXPECT_EQ(recipe["expert_source"], Json::parse("[0,0,1,1]"));
  EXPECT_EQ(recipe["non_ffn"], "average");
}

// dots1 (DeepSeek-V3 MoE on Qwen3 attention): renormalised sigmoid weights over whole virtual groups and
// a silent shared expert preserve the dense function; at full strength the shared expert does not.
TEST(ConvertCli, Dots1VerifyPassesWithASilentSharedExpert) {
  ScratchDir dir;
  auto qwen3 = tiny(dir, "qwen3");
  const std::vector<std::string> recipe = {"convert", qwen3.string(), "--format", "dots1", "--experts", "8",
                                           "--granularity", "2", "--top-k", "4", "--shared-experts", "1",
                                           "--moe-layers", "last:1", "--verify", "--verify-tokens", "16"};
  auto args = recipe;
  args.insert(args.end(), {"--shared-expert-scale", "0", (dir / "exact").string()});
  auto r = test::run_upcycle(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("verify: ok"), std::string::npos) << r.out;
  auto i = test::run_upcycle({"inspect", "--json", (dir / "exact").string()});
  ASSERT_EQ(i.exit_code, 0) << i.err;
  Json j = parse_json(i.out, "inspect", "dots1");
  EXPECT_EQ(j["family"], "dots1");
  EXPECT_EQ(j["moe"]["dense_layers"], Json({0}));
  EXPECT_EQ(j["moe"]["router"]["scores"], "sigmoid (fp32)");
  args = recipe;
  args.push_back((dir / "loud").string());
  r = test::run_upcycle(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("shared experts add to the routed output"), std::string::npos) << r.out;
}

TEST(ConvertCli, BadInputIsOneLineExit2AndNoOutput) {
  ScratchDir dir;
  auto dense = tiny(dir, "llama");
  auto qwen3 = tiny(dir, "qwen3");
  const auto out = dir / "out";
  const std::string d = dense.string(), o = out.string();
  expect_user_error(test::run_upcycle({"convert", d, o, "--preset", "nope"}), "unknown preset 'nope'", out);
  expect_user_error(test::run_upcycle({"convert", d, o, "--top-k", "9"}), "must not exceed --experts 8", out);
  expect_user_error(test::run_upcycle({"convert", d, o, "--granularity", "5"}), "must divide", out);
  expect_user_error(test::run_upcycle({"convert", d, o, "--experts", "6", "--granularity", "4"}), "multiple of", out);
  expect_user_error(test::run_upcycle({"convert", d, o, "--moe-layers", "0", "--format", "mixtral"}),
                    "mixtral cannot express MoE in only some layers; use --format qwen2_moe", out);
  expect_user_error(test::run_upcycle({"convert", qwen3.string(), o, "--format", "qwen2_moe"}), "use --format qwen3_moe", out);
  expect_user_error(test::run_upcycle({"convert", d, o, "--format", "dots1", "--shared-experts", "1"}),
                    "dots1's attention has per-head q_norm/k_norm", out);
  expect_user_error(test::run_upcycle({"convert", qwen3.string(), o, "--format", "dots1"}), "always has a shared expert", out);
  expect_user_error(test::run_upcycle({"convert", qwen3.string(), o, "--format", "dots1", "--shared-experts", "1",
                                       "--moe-layers", "0"}),
                    "first_k_dense_replace", out);
  expect_user_error(test::run_upcycle({"convert", qwen3.string(), o, "--format", "deepseek_v3"}),
                    "multi-head latent attention", out);
  expect_user_error(test::run_upcycle({"convert", d, o, "--router-init", "gaussian"}), "--router-init", out);
  expect_user_error(test::run_upcycle({"convert", d, o, "--weight-scaling", "big"}), "not a number", out);
  expect_user_error(test::run_upcycle({"convert", d, o, "--preset", "btx"}), "needs --expert-sources", out);
  expect_user_error(test::run_upcycle({"convert", d, o, "--depth-tile", "2", "--experts", "4"}), "dense model", out);
  expect_user_error(test::run_upcycle({"convert", (dir / "missing").string(), o}), "missing", out);
}

TEST(ConvertCli, HelpTeachesTheRecipes) {
  auto r = test::run_upcycle({"convert", "--help"});
  ASSERT_EQ(r.exit_code, 0);
  for (const char* s : {"--expert-init", "drop-upcycling", "every:2:1", "cube-root", "docs/recipes.md", "--verify",
                        "kmeans:STD", "--calibration FILE.txt", "--calibration-tokens"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
}

// --rng-version: recorded in config.json (default 2), selects the normal stream (different expert
// bytes, same everything else), and an unknown version is a one-line error with no output.
TEST(ConvertCli, RngVersionIsRecordedAndSelectsTheNormalStream) {
  ScratchDir dir;
  auto dense = tiny(dir, "llama");
  auto convert = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> args{"convert", dense.string(), (dir / name).string(), "--experts", "4", "--expert-init", "drop"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_upcycle(args);
  };
  ASSERT_EQ(convert("v2", {}).exit_code, 0);
  auto r1 = convert("v1", {"--rng-version", "1"});
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  EXPECT_EQ(read_model_config(dir / "v2").raw["upcycle_recipe"]["rng_version"], 2);
  EXPECT_EQ(read_model_config(dir / "v1").raw["upcycle_recipe"]["rng_version"], 1);
  auto tensor = [&](const std::string& name, const std::string& tensor_name) {
    Checkpoint c = Checkpoint::open(dir / name);
    const auto& ref = c.tensors().at(tensor_name);
    auto bytes = ref.file->data(*ref.info);
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  };
  const std::string expert = "model.layers.0.block_sparse_moe.experts.1.w1.weight", attn = "model.layers.0.self_attn.q_proj.weight";
  EXPECT_NE(tensor("v1", expert), tensor("v2", expert));
  EXPECT_EQ(tensor("v1", attn), tensor("v2", attn));
  ASSERT_EQ(convert("v2again", {"--rng-version", "2"}).exit_code, 0);
  EXPECT_EQ(tensor("v2again", expert), tensor("v2", expert));
  expect_user_error(convert("bad", {"--rng-version", "3"}), "rng-version", dir / "bad");
}

}  // namespace
}  // namespace upcycle
