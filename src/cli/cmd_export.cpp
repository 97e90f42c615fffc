// cmd_export.cpp: `upcycle export FORMAT …` dispatch (each format's command in cmd_export_<format>.cpp).
// As `upcycle data`: no format lists the formats (exit 2), `--help` or `help FORMAT` prints help
// (exit 0), an unknown format is a one-line Error.
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"

namespace upcycle::cli {
namespace {

const std::vector<Command>& export_commands() {
  static const std::vector<Command> kCommands{
      {"gguf", "write a checkpoint as one llama.cpp GGUF file (f32, f16, bf16 or q8_0) with its tokenizer",
       run_export_gguf},
  };
  return kCommands;
}

void print_export_overview() {
  std::printf("usage: upcycle export FORMAT [options]    (upcycle export FORMAT --help for details)\n\n"
              "Write an HF checkpoint in another tool's format (docs/formats.md).\n\nformats:\n");
  for (const auto& c : export_commands())
    std::printf("  %-8s %.*s\n", std::string(c.name).c_str(), int(c.summary.size()), c.summary.data());
}

}  // namespace

int run_export(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    if (args.size() >= 2) return run_export({args[1], "--help"});
    print_export_overview();
    return args.empty() ? 2 : 0;
  }
  for (const auto& c : export_commands())
    if (c.name == args[0]) return c.run(Args(args.begin() + 1, args.end()));
  throw Error("unknown export format '" + args[0] + "' (run 'upcycle export --help' for the list)");
}

}  // namespace upcycle::cli
