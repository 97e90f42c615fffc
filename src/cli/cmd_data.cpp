// cmd_data.cpp: `upcycle data SUBCOMMAND …` dispatch (table below; each run_data_* in its own file).
// Help and errors follow run_cli: `upcycle data` alone lists the subcommands (exit 2), `--help` or
// `help [SUBCOMMAND]` prints help (exit 0), an unknown subcommand is a one-line Error.
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"

namespace upcycle::cli {

const std::vector<Command>& data_commands() {
  static const std::vector<Command> kCommands{
      {"tokenize", "encode text files with an HF tokenizer.json into a dataset directory of token shards",
       run_data_tokenize},
      {"inspect", "describe a dataset directory (domain, vocab, shards, tokens per split) and validate it",
       run_data_inspect},
      {"train-tokenizer", "learn a byte-level BPE tokenizer.json (HF-loadable) from text files", run_data_train_tokenizer},
  };
  return kCommands;
}

namespace {

void print_data_overview() {
  std::printf(
      "usage: upcycle data SUBCOMMAND [options]    (upcycle data SUBCOMMAND --help for details)\n\n"
      "Training data: tokenized text in token shards (format: docs/formats.md).\n\nsubcommands:\n");
  for (const auto& c : data_commands())
    std::printf("  %-16s %.*s\n", std::string(c.name).c_str(), int(c.summary.size()), c.summary.data());
}

}  // namespace

int run_data(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    if (args.size() >= 2) return run_data({args[1], "--help"});
    print_data_overview();
    return args.empty() ? 2 : 0;
  }
  for (const auto& c : data_commands())
    if (c.name == args[0]) return c.run(Args(args.begin() + 1, args.end()));
  throw Error("unknown data subcommand '" + args[0] + "' (run 'upcycle data --help' for the list)");
}

}  // namespace upcycle::cli
