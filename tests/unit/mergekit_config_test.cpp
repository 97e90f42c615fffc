// mergekit-moe YAML → config → plan. The example YAMLs of tests/data/mergekit parse to plans written
// out by hand here; error cases check the message names the YAML file and the key path; writer
// selection follows mergekit's select_output_arch (Mixtral preferred, then mergekit's order).
#include "recipes/mergekit_config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/load_model.h"
#include "support/expect_error.h"
#include "support/mergekit_test_support.h"
#include "support/test_support.h"

namespace upcycle::recipes {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> strs(std::initializer_list<const char*> l) { return {l.begin(), l.end()}; }

// Planning reads only config.json, so these examples skip the weights.
fs::path example(const std::string& name, const fs::path& dir) {
  return test::materialise_mergekit_example(name, dir, test::ExampleWeights::kConfigOnly);
}

TEST(MergekitExamples, ClownCarHiddenGate) {
  test::ScratchDir dir;
  const fs::path yaml = example("clown_car_hidden.yaml", dir.path());
  const MergekitMoeConfig c = parse_mergekit_moe_yaml(yaml);
  EXPECT_TRUE(c.warnings.empty());
  const MoePlan p = plan_mergekit_moe(c);
  const fs::path models = fs::canonical(dir / "models");
  ASSERT_EQ(p.sources, (std::vector<fs::path>{models / "llama-base", models / "llama-chat", models / "llama-code",
                                              models / "llama-math"}));
  ASSERT_EQ(p.experts.size(), 3u);
  EXPECT_EQ(p.experts[0].source, 1u);
  EXPECT_EQ(p.experts[1].source, 2u);
  EXPECT_EQ(p.experts[2].source, 3u);
  EXPECT_EQ(p.experts[0].positive_prompts, strs({"Hello, how are you today?", "Tell me a story about a dragon."}));
  EXPECT_EQ(p.experts[0].negative_prompts, strs({"Solve for x: 3x + 5 = 11"}));
  EXPECT_TRUE(p.experts[1].negative_prompts.empty());
  EXPECT_EQ(p.experts[2].noise_scale, 0.01);
  EXPECT_EQ(p.experts[0].noise_scale, 0.0);
  EXPECT_EQ(p.experts[2].residual_scale, 1.0);
  EXPECT_FALSE(p.shared_expert.has_value());
  EXPECT_EQ(p.top_k, 2);
  EXPECT_EQ(p.output_family, Family::kMixtral);
  EXPECT_EQ(p.dtype, DType::kBF16);
  EXPECT_EQ(p.gate_mode, GateMode::kHidden);
  EXPECT_EQ(p.non_ffn, NonFfnSource::kBaseModel);
}

TEST(MergekitExamples, SparseUpcyclingRandomGate) {
  test::ScratchDir dir;
  const MoePlan p = plan_mergekit_moe(parse_mergekit_moe_yaml(example("sparse_upcycle_random.yaml", dir.path())));
  ASSERT_EQ(p.sources, std::vector<fs::path>{fs::canonical(dir / "models" / "llama-base")});
  ASSERT_EQ(p.experts.size(), 8u);
  for (const auto& e : p.experts) {
    EXPECT_EQ(e.source, 0u);
    EXPECT_TRUE(e.positive_prompts.empty());
  }
  EXPECT_EQ(p.gate_mode, GateMode::kRandom);
  EXPECT_EQ(p.seed, 1234u);
  EXPECT_EQ(p.output_family, Family::kMixtral);
  EXPECT_FALSE(p.dtype.has_value());
}

TEST(MergekitExamples, QwenSharedExpert) {
  test::ScratchDir dir;
  const MoePlan p = plan_mergekit_moe(parse_mergekit_moe_yaml(example("qwen_shared_expert.yaml", dir.path())));
  const fs::path models = fs::canonical(dir / "models");
  ASSERT_EQ(p.sources, (std::vector<fs::path>{models / "qwen2-base", models / "qwen2-code", models / "qwen2-math"}));
  EXPECT_EQ(p.output_family, Family::kQwen2Moe);
  EXPECT_EQ(p.gate_mode, GateMode::kCheapEmbed);
  EXPECT_EQ(p.top_k, 1);
  EXPECT_EQ(p.dtype, DType::kF32);
  ASSERT_TRUE(p.shared_expert.has_value());
  EXPECT_EQ(p.shared_expert->source, 0u);
  EXPECT_EQ(p.shared_expert->residual_scale, 0.1);
  EXPECT_EQ(p.shared_expert->positive_prompts, strs({"The", "A"}));
  EXPECT_TRUE(p.shared_expert_gate_from_init);
  EXPECT_EQ(p.experts[1].negative_prompts, strs({"def main():"}));
}

TEST(MergekitExamples, BtxAverageNonFfn) {
  test::ScratchDir dir;
  const MoePlan p = plan_mergekit_moe(parse_mergekit_moe_yaml(example("btx_average.yaml", dir.path())));
  const fs::path models = fs::canonical(dir / "models");
  ASSERT_EQ(p.sources, (std::vector<fs::path>{models / "llama-seed", models / "llama-math", models / "llama-code",
                                              models / "llama-wiki"}));
  ASSERT_EQ(p.experts.size(), 4u);
  for (size_t e = 0; e < 4; ++e) EXPECT_EQ(p.experts[e].source, e);
  EXPECT_EQ(p.non_ffn, NonFfnSource::kAverageOfSources);
  EXPECT_EQ(p.gate_mode, GateMode::kUniformRandom);
  EXPECT_EQ(p.seed, 7u);
  EXPECT_EQ(p.output_family, Family::kMixtral);
}

TEST(MergekitExamples, MaterialisedCheckpointsLoadAndInitRouters) {
  // The helper convert's tests will use: real weights, loadable by the engine, and the plan's base
  // model runs the hidden-state init (token ids stand in for the tokenizer here).
  test::ScratchDir dir;
  const MoePlan p = plan_mergekit_moe(
      parse_mergekit_moe_yaml(test::materialise_mergekit_example("clown_car_hidden.yaml", dir.path())));
  auto be = backend::make_backend(backend::BackendKind::kCpu);
  const ModelConfig base_config = read_model_config(p.sources[0]);
  auto base = model::load_transformer(base_config, p.sources[0], *be);
  const std::vector<ExpertPrompts> prompts = {{{{1, 2, 3}}, {{1, 4}}}, {{{1, 5}}, {}}, {{{1, 6, 7}}, {}}};
  const auto rows = router_from_prompts(*base, p.gate_mode, prompts, p.seed);
  ASSERT_EQ(rows.size(), size_t(base_config.num_hidden_layers));
  for (const auto& layer : rows)
    for (int64_t e = 0; e < 3; ++e) {
      double n = 0;
      for (int64_t d = 0; d < base_config.hidden_size; ++d)
        n += double(layer[size_t(e * base_config.hidden_size + d)]) * layer[size_t(e * base_config.hidden_size + d)];
      EXPECT_NEAR(n, 1.0, 1e-5);
    }
}

// Config-only model directories (plan reads config.json only) and YAMLs written per test.
class MergekitYaml : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::ScratchDir();
    auto model = [](const std::string& name, Family f, int64_t hidden = 8) {
      ModelConfig c = test::tiny_model_config(f);
      c.hidden_size = hidden;
      if (f == Family::kMixtral) c.num_experts = 4, c.num_experts_per_tok = 2, c.moe_intermediate_size = 12;
      fs::create_directories(dir_->path() / "models" / name);
      write_model_config(dir_->path() / "models" / name, c);
    };
    for (const char* n : {"llama-a", "llama-b", "llama-c"}) model(n, Family::kLlama);
    model("llama-wide", Family::kLlama, 16);
    model("mistral-a", Family::kMistral);
    model("qwen2-a", Family::kQwen2);
    model("qwen2-b", Family::kQwen2);
    model("qwen3-a", Family::kQwen3);
    model("qwen3-b", Family::kQwen3);
    model("mixtral-a", Family::kMixtral);
  }
  static void TearDownTestSuite() { delete dir_; }

  fs::path write(const std::string& text) {
    const fs::path p = dir_->path() / "config.yaml";
    test::write_bytes(p, text);
    return p;
  }
  // A YAML with base llama-a and experts llama-b, llama-c (random gate) plus `extra` lines.
  fs::path two_experts(const std::string& extra) {
    return write(
        "base_model: models/llama-a\ngate_mode: random\nexperts:\n  - source_model: models/llama-b\n"
        "  - source_model: models/llama-c\n" +
        extra);
  }
  static test::ScratchDir* dir_;
};
test::ScratchDir* MergekitYaml::dir_ = nullptr;

TEST_F(MergekitYaml, DefaultsAndRelativeAndAbsolutePaths) {
  const fs::path abs = fs::canonical(dir_->path() / "models" / "llama-c");
  const fs::path y = write(
      "base_model: models/llama-a\nexperts:\n  - source_model: ./models/../models/llama-b\n"
      "    positive_prompts: [x]\n  - source_model: " +
      abs.string() + "\n    positive_prompts: [y]\n");
  const MergekitMoeConfig c = parse_mergekit_moe_yaml(y);
  EXPECT_EQ(c.gate_mode, GateMode::kHidden);
  EXPECT_EQ(c.experts_per_token, 2);
  EXPECT_FALSE(c.dtype.has_value());
  EXPECT_FALSE(c.average_non_ffn);
  EXPECT_EQ(c.seed, 0u);
  EXPECT_EQ(c.experts[0].source_dir, fs::canonical(dir_->path() / "models" / "llama-b"));
  EXPECT_EQ(c.experts[1].source_dir, abs);
  EXPECT_EQ(c.experts[0].source_model, "./models/../models/llama-b");
}

TEST_F(MergekitYaml, UnknownKeysAreIgnoredWithAWarning) {
  const MergekitMoeConfig c = parse_mergekit_moe_yaml(two_experts("expert_per_token: 1\n"));
  EXPECT_EQ(c.experts_per_token, 2);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("unknown key 'expert_per_token' ignored"), std::string::npos) << c.warnings[0];
  const MergekitMoeConfig d = parse_mergekit_moe_yaml(
      write("base_model: models/llama-a\ngate_mode: random\nexperts:\n  - source_model: models/llama-b\n"
            "    prompts: [a]\n  - source_model: models/llama-c\n"));
  ASSERT_EQ(d.warnings.size(), 1u);
  EXPECT_NE(d.warnings[0].find("'experts[0].prompts'"), std::string::npos) << d.warnings[0];
}

TEST_F(MergekitYaml, MissingKeysAndWrongTypesNameTheKeyPath) {
  const std::string f = (dir_->path() / "config.yaml").string();
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(write("experts: []\n")), "base_model: missing", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(write("base_model: models/llama-a\n")), "experts: missing", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(write("base_model: models/llama-a\nexperts: []\n")),
                       "experts: needs at least one expert", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(write("base_model: models/llama-a\nexperts: models/llama-b\n")),
                       "experts: expected a list", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(two_experts("  - positive_prompts: [a]\n")),
                       "experts[2].source_model: missing", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(two_experts("experts_per_token: two\n")),
                       "experts_per_token: expected an integer, got 'two'", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(two_experts("experts_per_token: [1]\n")),
                       "experts_per_token: expected an integer", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(two_experts("average_non_ffn: maybe\n")),
                       "average_non_ffn: expected true or false", f);
  EXPECT_UPCYCLE_ERROR(
      parse_mergekit_moe_yaml(write("base_model: models/llama-a\nexperts:\n  - source_model: models/llama-b\n"
                                    "    noise_scale: loud\n")),
      "experts[0].noise_scale: expected a number", f);
  EXPECT_UPCYCLE_ERROR(
      parse_mergekit_moe_yaml(write("base_model: models/llama-a\nexperts:\n  - source_model: models/llama-b\n"
                                    "    positive_prompts: {a: b}\n")),
      "experts[0].positive_prompts: expected a list of strings", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(write("base_model: [\n")), "invalid YAML at line", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(write("- a\n- b\n")), "expected a mergekit-moe config", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(dir_->path() / "absent.yaml"), "cannot read the file",
                       (dir_->path() / "absent.yaml").string());
}

TEST_F(MergekitYaml, BadValues) {
  const std::string f = (dir_->path() / "config.yaml").string();
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(two_experts("experts_per_token: 3\n")),
                       "experts_per_token: 3 exceeds the number of experts (2)", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(two_experts("experts_per_token: 0\n")), "experts_per_token: must be ≥ 1",
                       f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(two_experts("shared_experts:\n  - source_model: models/llama-a\n"
                                                           "  - source_model: models/llama-b\n")),
                       "shared_experts: at most one shared expert", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(write("base_model: models/llama-a\ngate_mode: smart\nexperts:\n"
                                                     "  - source_model: models/llama-b\n")),
                       "gate_mode: unknown value 'smart'", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(two_experts("dtype: float8\n")), "dtype: unknown value 'float8'", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(two_experts("architecture: gemma\n")),
                       "architecture: 'gemma' names no mergekit output architecture", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(two_experts("architecture: deepseek\n")),
                       "upcycle does not write DeepSeek MoE", f);
  EXPECT_EQ(parse_mergekit_moe_yaml(two_experts("dtype: torch.float16\n")).dtype, DType::kF16);
}

TEST_F(MergekitYaml, ModelPathsMustBeLocalDirectories) {
  const std::string f = (dir_->path() / "config.yaml").string();
  EXPECT_UPCYCLE_ERROR(
      parse_mergekit_moe_yaml(write("base_model: mistralai/Mistral-7B-v0.1\nexperts:\n  - source_model: x\n")),
      "base_model: 'mistralai/Mistral-7B-v0.1': not a local directory (upcycle reads local checkpoints; download it "
      "first, e.g. with `huggingface-cli download mistralai/Mistral-7B-v0.1 --local-dir DIR`)",
      f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(two_experts("  - source_model: org/model+org/lora\n")),
                       "experts[2].source_model: 'org/model+org/lora': not a local directory (LoRA", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(two_experts("  - source_model: models/llama-a/config.json\n")),
                       "experts[2].source_model: 'models/llama-a/config.json' is a file", f);
}

TEST_F(MergekitYaml, PromptRulesForPromptGates) {
  const std::string f = (dir_->path() / "config.yaml").string();
  EXPECT_UPCYCLE_ERROR(
      parse_mergekit_moe_yaml(write("base_model: models/llama-a\nexperts:\n  - source_model: models/llama-b\n"
                                    "    positive_prompts: [a]\n  - source_model: models/llama-c\n")),
      "experts[1].positive_prompts: gate_mode hidden needs at least one positive prompt", f);
  EXPECT_UPCYCLE_ERROR(parse_mergekit_moe_yaml(write("base_model: models/llama-a\ngate_mode: cheap_embed\nexperts:\n"
                                                     "  - source_model: models/llama-b\n    positive_prompts: [a]\n"
                                                     "  - source_model: models/llama-c\n    positive_prompts: [a]\n")),
                       "experts: every expert has the same positive and negative prompts", f);
  // Different negatives make the prompt sets differ; uniform_random needs no prompts at all.
  EXPECT_NO_THROW(parse_mergekit_moe_yaml(
      write("base_model: models/llama-a\nexperts:\n  - source_model: models/llama-b\n    positive_prompts: [a]\n"
            "  - source_model: models/llama-c\n    positive_prompts: [a]\n    negative_prompts: [b]\n")));
  EXPECT_NO_THROW(
      parse_mergekit_moe_yaml(write("base_model: models/llama-a\ngate_mode: uniform_random\nexperts:\n"
                                    "  - source_model: models/llama-b\n  - source_model: models/llama-b\n")));
}

TEST_F(MergekitYaml, SourcesMustShareAnArchitecture) {
  const std::string f = (dir_->path() / "config.yaml").string();
  EXPECT_UPCYCLE_ERROR(plan_mergekit_moe(parse_mergekit_moe_yaml(two_experts("  - source_model: models/qwen2-a\n"))),
                       "experts[2].source_model: model_type 'qwen2' differs from base_model's 'llama'", f);
  EXPECT_UPCYCLE_ERROR(plan_mergekit_moe(parse_mergekit_moe_yaml(two_experts("  - source_model: models/mistral-a\n"))),
                       "experts[2].source_model: model_type 'mistral' differs", f);
  EXPECT_UPCYCLE_ERROR(
      plan_mergekit_moe(parse_mergekit_moe_yaml(two_experts("  - source_model: models/llama-wide\n"))),
      "experts[2].source_model: hidden_size 16 differs from base_model's 8 (all sources must share one architecture)",
      f);
  EXPECT_UPCYCLE_ERROR(plan_mergekit_moe(parse_mergekit_moe_yaml(two_experts("  - source_model: models/mixtral-a\n"))),
                       "experts[2].source_model: 'mixtral' is already an MoE model", f);
}

TEST_F(MergekitYaml, OutputFamilyFollowsMergekitsWriterSelection) {
  const std::string f = (dir_->path() / "config.yaml").string();
  auto family = [&](const std::string& yaml) {
    return plan_mergekit_moe(parse_mergekit_moe_yaml(write(yaml))).output_family;
  };
  const std::string qwen3 =
      "base_model: models/qwen3-a\ngate_mode: random\nexperts:\n  - source_model: models/qwen3-a\n"
      "  - source_model: models/qwen3-b\n";
  EXPECT_EQ(family(qwen3), Family::kQwen3Moe);
  EXPECT_EQ(family(qwen3 + "architecture: QWEN\n"), Family::kQwen3Moe);  // prefix of "Qwen3 MoE" too
  // Llama sources with a prompted shared expert: Mixtral and DeepSeek decline, Qwen MoE writes it.
  const std::string shared = "shared_experts:\n  - source_model: models/llama-a\n    positive_prompts: [s]\n";
  EXPECT_EQ(plan_mergekit_moe(parse_mergekit_moe_yaml(two_experts(shared))).output_family, Family::kQwen2Moe);
  EXPECT_UPCYCLE_ERROR(plan_mergekit_moe(parse_mergekit_moe_yaml(two_experts("architecture: mixtral\n" + shared))),
                       "no output architecture fits this config with llama sources: Mixtral does not support shared "
                       "experts",
                       f);
  // An ungated shared expert is DeepSeek's case in mergekit.
  EXPECT_UPCYCLE_ERROR(
      plan_mergekit_moe(parse_mergekit_moe_yaml(two_experts("shared_experts:\n  - source_model: models/llama-a\n"))),
      "mergekit would write DeepSeek MoE for this config", f);
  // ...but with gate_mode random the Qwen writer takes it when asked for by name.
  const MoePlan p = plan_mergekit_moe(
      parse_mergekit_moe_yaml(two_experts("architecture: qwen\nshared_experts:\n  - source_model: models/llama-a\n")));
  EXPECT_EQ(p.output_family, Family::kQwen2Moe);
  EXPECT_TRUE(p.shared_expert_gate_from_init);
  EXPECT_UPCYCLE_ERROR(
      plan_mergekit_moe(parse_mergekit_moe_yaml(write(qwen3 + "shared_experts:\n  - source_model: models/qwen3-a\n"
                                                              "    positive_prompts: [s]\n"))),
      "no output architecture fits this config with qwen3 sources", f);
  EXPECT_EQ(family("base_model: models/qwen2-a\ngate_mode: random\nshared_experts:\n  - source_model: models/qwen2-a\n"
                   "experts:\n  - source_model: models/qwen2-a\n  - source_model: models/qwen2-b\n"),
            Family::kQwen2Moe);
}

}  // namespace
}  // namespace upcycle::recipes
