// upcycle entry point: hands the arguments to the subcommand dispatcher.
#include "cli/commands.h"

int main(int argc, char** argv) { return upcycle::cli::run_cli(upcycle::cli::Args(argv + 1, argv + argc)); }
