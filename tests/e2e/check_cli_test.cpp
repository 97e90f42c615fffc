// `upcycle check DIR --target ENGINE` end to end: for every rule of the engine table a checkpoint that
// breaks it (made by `init`, with config.json edited where no flag makes the shape) and the line that
// names it; the same engines stay quiet on checkpoints they run; every rule of the table is shown to
// fire by some case; bad input is a one-line error; docs/compatibility.md holds the table verbatim.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "core/json.h"
#include "io/engine_rules.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;
using test::ScratchDir;

struct Case {
  std::string name;
  std::string arch;
  std::vector<std::string> init_flags;  // beyond --arch ARCH --preset tiny
  std::string config_patch;             // JSON merge patch applied to config.json ("" = none)
  std::string target;
  std::string expect;                   // substring of the problem line; "" = "<target>: compatible"
};

// A tiny checkpoint of `arch` with the flags and the patched config.
fs::path make_checkpoint(const ScratchDir& dir, const Case& c) {
  fs::path out = dir / c.name;
  std::vector<std::string> args{"init", "--arch", c.arch, "--preset", "tiny"};
  args.insert(args.end(), c.init_flags.begin(), c.init_flags.end());
  args.push_back(out.string());
  auto r = test::run_upcycle(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (!c.config_patch.empty()) {
    Json config = read_json_file(out / "config.json", "config");
    config.merge_patch(parse_json(c.config_patch, "patch", c.name));
    std::ofstream(out / "config.json") << config.dump(2);
  }
  return out;
}

const std::vector<Case>& firing_cases() {
  static const std::vector<Case> kCases{
      {"rope_unknown", "llama", {}, R"({"rope_scaling": {"rope_type": "ntk_custom", "factor": 2.0}})", "transformers", "rope_scaling type 'ntk_custom' is unknown to transformers"},
      {"fused_qwen2moe", "qwen2_moe", {"--expert-layout", "fused"}, "", "vllm", "expert layout is fused"},
      {"qwen2_some_windows", "qwen2", {}, R"({"use_sliding_window": true, "sliding_window": 32, "max_window_layers": 1})", "vllm", "sliding window on some layers only"},
      {"qwen3moe_window", "qwen3_moe", {"--norm-topk-prob", "true"}, R"({"use_sliding_window": true, "sliding_window": 32})", "vllm", "sliding_window 32 is set (vLLM's qwen3_moe"},
      {"qwen2moe_no_qkv_bias", "qwen2_moe", {}, R"({"qkv_bias": false})", "vllm", "qkv_bias is false (vLLM's qwen2_moe"},
      {"qwen3moe_attention_bias", "qwen3_moe", {}, R"({"attention_bias": true})", "vllm", "attention_bias is true (vLLM's qwen3_moe"},
      {"qwen2moe_head_dim", "qwen2_moe", {"--head-dim", "32"}, "", "vllm", "head_dim 32 is not hidden_size / num_attention_heads (vLLM"},
      {"vllm_dots1_keys", "dots1", {}, R"({"topk_method": null})", "vllm", "config.json lacks scoring_func, topk_method or moe_layer_freq (vLLM's dots1"},
      {"vllm_dots1_scaling", "dots1", {}, R"({"routed_scaling_factor": 2.5})", "vllm", "routed_scaling_factor 2.5 also scales the shared expert in vLLM's dots1"},
      {"vllm_dots1_window", "dots1", {}, R"({"sliding_window": 32, "max_window_layers": 1})", "vllm", "sliding_window 32 applies to layer 1 (vLLM's dots1"},
      {"mistral_window", "mistral", {}, "", "llama.cpp", "sliding_window 4096 is set (llama.cpp"},
      {"rope_dynamic", "llama", {}, R"({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}})", "llama.cpp", "rope_scaling type 'dynamic' is not exported"},
      {"qwen3_attention_bias", "qwen3", {}, R"({"attention_bias": true})", "llama.cpp", "attention_bias is true (llama.cpp's qwen3"},
      {"qwen2_no_qkv_bias", "qwen2_moe", {}, R"({"qkv_bias": false})", "llama.cpp", "qkv_bias is false (llama.cpp's qwen2"},
      {"dots1_gguf", "dots1", {}, "", "llama.cpp", "model_type 'dots1' is not exported to GGUF by upcycle"},
      {"qwen2moe_dense_layer", "qwen2_moe", {}, R"({"mlp_only_layers": [0]})", "llama.cpp", "decoder_sparse_step/mlp_only_layers make dense layers (llama.cpp's MoE graphs"},
      {"qwen2moe_norm_topk", "qwen2_moe", {"--norm-topk-prob", "true"}, "", "llama.cpp", "norm_topk_prob is true (llama.cpp's qwen2moe"},
      {"qwen3moe_no_norm_topk", "qwen3_moe", {}, "", "llama.cpp", "norm_topk_prob is false (llama.cpp's qwen3moe"},
      {"qwen2moe_no_shared", "qwen2_moe", {"--shared-expert-intermediate-size", "0"}, "", "llama.cpp", "shared_expert_intermediate_size is 0"},
      {"mixtral_513_experts", "mixtral", {}, R"({"num_local_experts": 513})", "llama.cpp", "513 experts exceed LLAMA_MAX_EXPERTS (512)"},
      {"megatron_qwen2moe", "qwen2_moe", {}, "", "megatron-bridge", "model_type 'qwen2_moe' is not supported (no Megatron-Bridge bridge"},
      {"megatron_fused", "mixtral", {"--expert-layout", "fused"}, "", "megatron-bridge", "expert layout is fused (Megatron-Bridge's MoE bridges"},
      {"megatron_head_dim", "mixtral", {"--head-dim", "32"}, "", "megatron-bridge", "head_dim 32 is not hidden_size / num_attention_heads (MixtralBridge"},
      {"megatron_window", "mixtral", {}, R"({"sliding_window": 32})", "megatron-bridge", "sliding_window 32 is set (MixtralBridge"},
      {"megatron_dense_layer", "qwen3_moe", {"--norm-topk-prob", "true"}, R"({"decoder_sparse_step": 2})", "megatron-bridge", "decoder_sparse_step/mlp_only_layers make dense layers (Qwen3MoEBridge"},
      {"megatron_bias", "qwen3_moe", {"--norm-topk-prob", "true"}, R"({"attention_bias": true})", "megatron-bridge", "attention_bias is true (Qwen3MoEBridge"},
      {"megatron_no_norm_topk", "qwen3_moe", {}, "", "megatron-bridge", "norm_topk_prob is false (Megatron's router"},
      {"deepspeed_qwen3", "qwen3", {}, "", "deepspeed", "model_type 'qwen3' is not supported (build_hf_engine"},
      {"deepspeed_dense_layer", "qwen2_moe", {}, R"({"mlp_only_layers": [1]})", "deepspeed", "decoder_sparse_step/mlp_only_layers make dense layers (FastGen's qwen2_moe"},
      // 96 * 2 != 64: FastGen would build experts 64 / 2 = 32 wide.
      {"deepspeed_shared_width", "qwen2_moe", {"--shared-expert-intermediate-size", "64"}, "", "deepspeed",
       "moe_intermediate_size 96 is not shared_expert_intermediate_size / num_experts_per_tok (64 / 2)"},
      {"deepspeed_head_dim", "qwen2_moe", {"--head-dim", "32"}, "", "deepspeed", "head_dim 32 is not hidden_size / num_attention_heads (FastGen"},
      {"torchtitan_mixtral", "mixtral", {}, "", "torchtitan", "model_type 'mixtral' is not supported (torchtitan"},
      {"torchtitan_fused", "qwen3_moe", {"--expert-layout", "fused"}, "", "torchtitan", "expert layout is fused (torchtitan"},
      {"torchtitan_bias", "llama", {}, R"({"attention_bias": true})", "torchtitan", "attention biases are set (torchtitan"},
  };
  return kCases;
}

// Checkpoints each engine runs: the rules stay quiet on them.
const std::vector<Case>& quiet_cases() {
  static const std::vector<Case> kCases{
      {"q_transformers", "qwen3_moe", {"--expert-layout", "fused"}, R"({"rope_scaling": {"rope_type": "yarn", "factor": 2.0}, "mlp_only_layers": [0]})", "transformers", ""},
      {"q_vllm", "qwen2_moe", {"--norm-topk-prob", "true"}, R"({"mlp_only_layers": [0]})", "vllm", ""},
      {"q_vllm_mistral", "mistral", {}, "", "vllm", ""},
      {"q_llama_cpp", "qwen2_moe", {"--expert-layout", "fused"}, "", "llama.cpp", ""},
      {"q_llama_cpp_qwen3moe", "qwen3_moe", {"--norm-topk-prob", "true"}, "", "llama.cpp", ""},
      {"q_megatron", "qwen3_moe", {"--norm-topk-prob", "true"}, "", "megatron-bridge", ""},
      {"q_megatron_mixtral", "mixtral", {}, "", "megatron-bridge", ""},
      {"q_deepspeed", "qwen2_moe", {"--norm-topk-prob", "true", "--expert-layout", "fused"}, "", "deepspeed", ""},
      {"q_torchtitan", "qwen3_moe", {}, R"({"mlp_only_layers": [1]})", "torchtitan", ""},
      {"q_transformers_dots1", "dots1", {}, R"({"first_k_dense_replace": 1, "n_group": 2, "topk_group": 1})", "transformers", ""},
      {"q_vllm_dots1", "dots1", {}, R"({"first_k_dense_replace": 1, "n_group": 2, "topk_group": 1})", "vllm", ""},
  };
  return kCases;
}

test::RunResult check(const fs::path& dir, const std::string& target) {
  return test::run_upcycle({"check", dir.string(), "--target", target});
}

TEST(CheckCli, EveryRuleFiresOnACheckpointThatBreaksIt) {
  ScratchDir dir;
  std::string all_output;
  for (const Case& c : firing_cases()) {
    SCOPED_TRACE(c.name);
    auto r = check(make_checkpoint(dir, c), c.target);
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.out.find(c.target + ": " + c.expect), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find(c.target + ": compatible"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("compatibility problem"), std::string::npos) << r.err;
    all_output += r.out;
  }
  // Each rule's source appears in some output: no rule of the table is left untested.
  for (const EngineRule& rule : engine_rules())
    EXPECT_NE(all_output.find("(" + std::string(rule.source) + ")"), std::string::npos) << "never fired: " << rule.source;
}

TEST(CheckCli, RulesStayQuietOnCheckpointsTheEngineRuns) {
  ScratchDir dir;
  for (const Case& c : quiet_cases()) {
    SCOPED_TRACE(c.name);
    auto r = check(make_checkpoint(dir, c), c.target);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_EQ(r.out, c.target + ": compatible\n");
  }
}

TEST(CheckCli, AllTargetsReportEachEngineOnce) {
  ScratchDir dir;
  fs::path llama = make_checkpoint(dir, {"llama", "llama", {}, "", "", ""});
  auto r = check(llama, "all");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string expected;
  for (const std::string& e : engine_names()) expected += e + ": compatible\n";
  EXPECT_EQ(r.out, expected);
  // Repeated and listed targets: each engine once, in the order given.
  r = test::run_upcycle({"check", llama.string(), "--target", "vllm", "transformers", "--target", "vllm"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "vllm: compatible\ntransformers: compatible\n");
}

TEST(CheckCli, MixedTargetsExitTwoWithOnlyTheFailingEngineListed) {
  ScratchDir dir;
  fs::path mistral = make_checkpoint(dir, {"mistral", "mistral", {}, "", "", ""});
  auto r = test::run_upcycle({"check", mistral.string(), "--target", "vllm", "llama.cpp"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')), "vllm: compatible");
  EXPECT_NE(r.out.find("llama.cpp: sliding_window 4096 is set"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "upcycle: error: 1 compatibility problem (listed above) (" + mistral.string() + ")\n");
}

// `export gguf` refuses through the same table: its error is check's llama.cpp line, word for word.
TEST(CheckCli, GgufExportRefusesWithTheLlamaCppRule) {
  ScratchDir dir;
  for (const Case& c : firing_cases()) {
    if (c.name != "mixtral_513_experts" && c.name != "qwen3moe_no_norm_topk") continue;
    fs::path ckpt = make_checkpoint(dir, c);
    auto checked = check(ckpt, "llama.cpp");
    const std::string prefix = "llama.cpp: ";
    ASSERT_EQ(checked.out.rfind(prefix, 0), 0u) << checked.out;
    const std::string problem = checked.out.substr(prefix.size(), checked.out.find('\n') - prefix.size());
    auto exported = test::run_upcycle({"export", "gguf", ckpt.string(), (dir / (c.name + ".gguf")).string(), "--skip-tokenizer"});
    EXPECT_EQ(exported.exit_code, 2);
    EXPECT_NE(exported.err.find(problem), std::string::npos) << exported.err;
    EXPECT_FALSE(fs::exists(dir / (c.name + ".gguf")));
  }
}

TEST(CheckCli, BadInputIsAOneLineError) {
  ScratchDir dir;
  fs::path llama = make_checkpoint(dir, {"llama", "llama", {}, "", "", ""});
  auto unknown = check(llama, "tgi");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown --target 'tgi'"), std::string::npos) << unknown.err;
  auto missing = check(dir / "absent", "vllm");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find((dir / "absent").string()), std::string::npos) << missing.err;
  auto no_target = test::run_upcycle({"check", llama.string()});
  EXPECT_EQ(no_target.exit_code, 2);
  EXPECT_NE(no_target.err.find("no --target given"), std::string::npos) << no_target.err;
  for (const auto* r : {&unknown, &missing, &no_target}) {
    EXPECT_TRUE(r->out.empty()) << r->out;
    EXPECT_EQ(std::count(r->err.begin(), r->err.end(), '\n'), 1) << r->err;
  }
  fs::remove(llama / "config.json");
  auto no_config = check(llama, "vllm");
  EXPECT_EQ(no_config.exit_code, 2);
  EXPECT_NE(no_config.err.find("config.json"), std::string::npos) << no_config.err;
}

TEST(CheckCli, HelpListsEveryTargetAndDocsHoldTheRuleTable) {
  auto help = test::run_upcycle({"check", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const std::string& e : engine_names()) EXPECT_NE(help.out.find("  " + e + ": "), std::string::npos) << e;
  auto rules = test::run_upcycle({"check", "--rules"});
  EXPECT_EQ(rules.exit_code, 0);
  EXPECT_EQ(rules.out, engine_rules_markdown());
  const std::string docs = test::read_bytes(fs::path(UPCYCLE_REFERENCE_DIR) / ".." / ".." / "docs" / "compatibility.md");
  EXPECT_NE(docs.find(engine_rules_markdown()), std::string::npos)
      << "docs/compatibility.md is stale: paste the output of `upcycle check --rules`";
}

}  // namespace
}  // namespace upcycle
