// `upcycle check DIR --target ENGINE…`: can these engines run this checkpoint as transformers
// computes it? Reads config.json and the tensor names (for the expert layout) and applies the rule
// table of io/engine_rules.h. Prints "<engine>: compatible" or one "<engine>: <problem> (<source>)"
// line per problem; exit 2 when any problem is found. Tensor shapes are `upcycle inspect`'s job.
#include <algorithm>
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "io/engine_rules.h"
#include "io/model_config.h"
#include "io/weight_table.h"

namespace upcycle::cli {
namespace {

// "  vllm: expert layout, sliding window (dense qwen), …" for each engine, from the rule table.
std::string targets_help() {
  std::string text = "targets and what is checked for each (sources: upcycle check --rules, docs/compatibility.md):\n";
  for (const std::string& engine : engine_names()) {
    std::vector<std::string_view> aspects;
    for (const EngineRule& r : engine_rules())
      if (r.engine == engine && std::find(aspects.begin(), aspects.end(), r.aspect) == aspects.end()) aspects.push_back(r.aspect);
    text += "  " + engine + ":";
    for (size_t i = 0; i < aspects.size(); ++i) text += (i ? ", " : " ") + std::string(aspects[i]);
    text += "\n";
  }
  return text;
}

ExpertLayout layout_on_disk(const std::string& dir, const ModelConfig& config) {
  Checkpoint checkpoint = Checkpoint::open(dir);
  std::map<std::string, Shape, std::less<>> shapes;
  for (const auto& [name, ref] : checkpoint.tensors()) shapes[name] = ref.info->shape;
  return WeightTable::build(config, shapes).layout();  // tensor problems are `inspect`'s to report
}

}  // namespace

int run_check(const Args& args) {
  struct {
    std::string dir;
    std::vector<std::string> targets;
    bool rules = false;
  } o;
  std::vector<std::string> choices = engine_names();
  choices.push_back("all");
  std::string choice_list;
  for (const std::string& c : choices) choice_list += (choice_list.empty() ? "" : "|") + c;
  OptionSet set("check", "upcycle check DIR --target ENGINE [ENGINE…] | upcycle check --rules",
                "Say whether inference and training engines can load this checkpoint and compute what transformers\n"
                "computes: supported families, expert layout (per-expert or fused), top-k normalisation, expert-count\n"
                "limits, partial MoE (dense layers in an MoE model), shared experts, attention biases, sliding windows.\n"
                "Each rule was read from the engine's own source, which every problem line names. Only config.json\n"
                "and tensor names are read (use `upcycle inspect` to check tensor shapes).\n"
                "Prints '<engine>: compatible' or one '<engine>: <problem> (<source>)' line per problem; exits 2\n"
                "when any target has a problem.");
  set.add_positional("DIR", "checkpoint directory (config.json + safetensors)", &o.dir, Required::kNo);
  set.add_list("target", choice_list, "engines to check (repeatable; all = every engine)", &o.targets);
  set.add_flag("rules", "print the rule table (engine | checks | source) as Markdown and exit", &o.rules);
  set.add_epilog(targets_help());
  set.add_epilog(
      "examples:\n"
      "  upcycle check /tmp/qmoe --target vllm llama.cpp\n"
      "  upcycle check /tmp/qmoe --target all");
  if (!set.parse(args)) return 0;

  if (o.rules) {
    std::fputs(engine_rules_markdown().c_str(), stdout);
    return 0;
  }
  if (o.dir.empty()) throw Error("missing checkpoint directory DIR (upcycle check --help)");
  if (o.targets.empty()) throw Error("no --target given (one of " + choice_list + ")");
  std::vector<std::string> targets;
  for (const std::string& t : o.targets) {
    if (std::find(choices.begin(), choices.end(), t) == choices.end())
      throw Error("unknown --target '" + t + "' (one of " + choice_list + ")");
    if (t == "all") targets = engine_names();
    else if (std::find(targets.begin(), targets.end(), t) == targets.end()) targets.push_back(t);
  }

  const ModelConfig config = read_model_config(o.dir);
  const ExpertLayout layout = layout_on_disk(o.dir, config);
  size_t problems = 0;
  for (const std::string& target : targets) {
    std::vector<std::string> lines = engine_problems(target, config, layout);
    if (lines.empty()) std::printf("%s: compatible\n", target.c_str());
    for (const std::string& line : lines) std::printf("%s: %s\n", target.c_str(), line.c_str());
    problems += lines.size();
  }
  std::fflush(stdout);
  if (problems > 0)
    throw Error(std::to_string(problems) + " compatibility problem" + (problems > 1 ? "s" : "") + " (listed above)", o.dir);
  return 0;
}

}  // namespace upcycle::cli
