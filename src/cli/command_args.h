// Parse-only entry points of commands that `upcycle study` runs: the flags are read by the same
// option tables the commands use, so the study's plan and the runs can never read a flag
// differently, and a misspelt flag in a spec fails before any training. Defined in cmd_<name>.cpp.
#pragma once

#include "cli/commands.h"
#include "train/trainer_options.h"

namespace upcycle::cli {

// `upcycle train` flags → options, range-checked (train::validate_options); Error as `train` would.
train::TrainOptions parse_train_args(const Args& args);

// `upcycle convert` flags: parsed, preset applied, and the checks that need no file (unknown flags,
// bad choices, --depth-tile combinations); Error as `convert` would. Reads nothing.
void check_convert_args(const Args& args);

}  // namespace upcycle::cli
