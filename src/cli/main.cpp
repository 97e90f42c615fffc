// upcycle entry point: lifts the open-files soft limit (checkpoints of thousands of shards), then hands
// the arguments to the subcommand dispatcher.
#include "cli/commands.h"
#include "core/file_util.h"

int main(int argc, char** argv) {
  upcycle::raise_open_file_limit();
  return upcycle::cli::run_cli(upcycle::cli::Args(argv + 1, argv + argc));
}
