// What each engine that loads upcycle's HF checkpoints can run, as ONE table of rules: each rule names
// its engine, the aspect it checks, the engine source file (and commit/version) it was read from, and a
// predicate that returns the problem for a config (nullopt = fine). `upcycle check` prints the
// problems; `upcycle export gguf` refuses with the llama.cpp rules; `upcycle check --rules` prints the
// table docs/compatibility.md holds, so code and docs cannot drift. Non-goal: rules for configs
// upcycle's own reader already refuses (unknown model_type, non-SwiGLU MLPs, top-k > experts).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/model_config.h"
#include "io/weight_table.h"

namespace upcycle {

struct EngineRule {
  std::string_view engine;  // one of engine_names()
  std::string_view aspect;  // "supported families", "expert layout", "top-k normalisation", …
  std::string_view source;  // engine file (commit or version) the rule was read from
  std::optional<std::string> (*problem)(const ModelConfig& config, ExpertLayout layout);
};

const std::vector<EngineRule>& engine_rules();
// "transformers", "vllm", "llama.cpp", "megatron-bridge", "deepspeed", "torchtitan", in table order.
const std::vector<std::string>& engine_names();
// Every problem `engine` has with the checkpoint, each "<problem> (<source>)"; empty = compatible.
std::vector<std::string> engine_problems(std::string_view engine, const ModelConfig& config, ExpertLayout layout);
// The rule table as a Markdown table (engine | checks | source), for docs and `check --rules`.
std::string engine_rules_markdown();

}  // namespace upcycle
