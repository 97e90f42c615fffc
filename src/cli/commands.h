// The subcommand table: each cmd_<name>.cpp defines one `int run_<name>(args)`; main.cpp dispatches
// here and turns exceptions into the one-line `upcycle: error: …` form with exit code 2.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace upcycle::cli {

using Args = std::vector<std::string>;

int run_init(const Args& args);
int run_inspect(const Args& args);
int run_check(const Args& args);
int run_import(const Args& args);
int run_export(const Args& args);
int run_export_gguf(const Args& args);
int run_logits(const Args& args);
int run_generate(const Args& args);
int run_eval(const Args& args);
int run_convert(const Args& args);
int run_data(const Args& args);
int run_data_tokenize(const Args& args);
int run_data_inspect(const Args& args);
int run_data_train_tokenizer(const Args& args);
int run_train(const Args& args);
int run_study(const Args& args);
int run_analyze(const Args& args);
int run_report(const Args& args);
int run_plan(const Args& args);

struct Command {
  std::string_view name;
  std::string_view summary;
  int (*run)(const Args& args);
};
const std::vector<Command>& commands();
const std::vector<Command>& data_commands();  // `upcycle data SUBCOMMAND` (cmd_data.cpp)

// Runs `upcycle <args…>` and returns the process exit code; prints errors itself.
int run_cli(const Args& args);

}  // namespace upcycle::cli
