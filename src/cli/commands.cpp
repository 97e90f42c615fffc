// Subcommand dispatch and top-level error reporting (see commands.h).
#include "cli/commands.h"

#include <cstdio>
#include <new>
#include <stdexcept>

#include "core/error.h"
#include "dist/launcher.h"

namespace upcycle::cli {
namespace {

constexpr int kUserError = 2;
constexpr int kInternalError = 70;  // EX_SOFTWARE: a bug in upcycle, not in the input

// "rank 1 of 2: " in a job of several processes (mpirun, srun): whose error it is.
std::string rank_prefix() {
  const dist::LauncherInfo l = dist::launcher_from_environment();
  if (!l.rank || !l.size || *l.size <= 1) return "";
  return "rank " + std::to_string(*l.rank) + " of " + std::to_string(*l.size) + ": ";
}

void print_overview() {
  std::printf(
      "upcycle: turn dense Hugging Face language models into Mixture-of-Experts models.\n\n"
      "usage: upcycle COMMAND [options]    (upcycle COMMAND --help for details)\n\ncommands:\n");
  for (const auto& c : commands()) std::printf("  %-10s %.*s\n", std::string(c.name).c_str(), int(c.summary.size()), c.summary.data());
  std::printf(
      "\nexit status: 0 success, 2 bad input (the message names the file and the problem), 70 internal error.\n");
}

}  // namespace

const std::vector<Command>& commands() {
  static const std::vector<Command> kCommands{
      {"init", "write a randomly initialised HF checkpoint of any supported family", run_init},
      {"convert", "upcycle a dense checkpoint into an MoE one (copy, drop, noise, granular, BTX; --verify)", run_convert},
      {"inspect", "describe an HF checkpoint and check it against its config (reads no tensor data)", run_inspect},
      {"check", "can vLLM, llama.cpp, transformers, Megatron-Bridge, DeepSpeed, torchtitan run this checkpoint?", run_check},
      {"import", "turn a llama.cpp GGUF file into an HF checkpoint with its tokenizer (dequantised, streamed)", run_import},
      {"export", "write a checkpoint in another tool's format: llama.cpp GGUF (upcycle export --help)", run_export},
      {"logits", "run a forward pass over token ids and write the logits as a NumPy .npy file", run_logits},
      {"generate", "continue token ids with the model (greedy or top-p sampling, KV cache)", run_generate},
      {"eval", "mean token loss and perplexity on token data (dataset dir, shard or raw uint32 file)", run_eval},
      {"data", "training data: tokenize text into token shards, inspect datasets, train a tokenizer (upcycle data --help)", run_data},
      {"train", "train a dense or MoE checkpoint on tokenized data; resumable, with metrics and TensorBoard", run_train},
      {"study", "compare upcycling recipes, dense continuation and MoE from scratch at equal compute", run_study},
      {"analyze", "routing and expert-specialisation diagnostics: loads per domain, expert similarity", run_analyze},
      {"report", "compare training runs or a study in one self-contained HTML file of SVG plots", run_report},
      {"plan", "fit the upcycling scaling law to a study; predict where upcycling stops beating the baselines", run_plan},
  };
  return kCommands;
}

int run_cli(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    if (args.size() >= 2) return run_cli({args[1], "--help"});
    print_overview();
    return args.empty() ? kUserError : 0;
  }
  try {
    for (const auto& c : commands())
      if (c.name == args[0]) return c.run(Args(args.begin() + 1, args.end()));
    throw Error("unknown command '" + args[0] + "' (run 'upcycle --help' for the list)");
  } catch (const Error& e) {
    std::fprintf(stderr, "upcycle: error: %s%s\n", rank_prefix().c_str(), e.message().c_str());
    return kUserError;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "upcycle: error: %sout of memory\n", rank_prefix().c_str());
    return kUserError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "upcycle: %s%s\n", rank_prefix().c_str(), e.what());
    return kInternalError;
  }
}

}  // namespace upcycle::cli
