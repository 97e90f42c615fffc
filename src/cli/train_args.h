// `upcycle train` flags → train::TrainOptions without training: `upcycle study` plans each run
// (tokens per step, routing, hence FLOPs per step) from the same flag table the command parses, so
// the plan and the run can never read a flag differently. Defined in cmd_train.cpp.
#pragma once

#include "cli/commands.h"
#include "train/trainer_options.h"

namespace upcycle::cli {

// Parses and range-checks (train::validate_options) the flags; Error for anything `train` would refuse.
train::TrainOptions parse_train_args(const Args& args);

}  // namespace upcycle::cli
