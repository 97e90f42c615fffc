// A study's learning-rate sweeps (docs/study.md, "Learning-rate sweeps"): a variant trained at several
// peak learning rates is compared, everywhere else in the report, at the one with the lowest mean
// validation loss (mean over its seeds) at the equal-compute point: the most run FLOPs every evaluated
// learning rate of the sweep has reached, i.e. the final evaluation once all have finished (a learning
// rate changes no step's cost, so they all stop at the same FLOPs). Tie rule: equal losses go to the
// smaller learning rate, the more conservative choice. The other runs stay in ReportData::sweeps for
// the sweep's own table and plot, so the choice can be checked. Non-goals: interpolating between the
// swept values or choosing per domain.
#pragma once

#include "report/run_data.h"

namespace upcycle::report {

// Fills sweep.compare_flops, loss, seed_loss and best from sweep.runs (ordered by increasing lr).
void choose_learning_rate(LrSweep& sweep);

// Groups the variants that carry a `sweep` name into data.sweeps (runs by increasing lr) and leaves in
// data.variants, at the position of the sweep's first run, the chosen run under the sweep's name (the
// smallest lr while none is evaluated). Variants without a sweep are untouched.
void fold_lr_sweeps(ReportData& data);

}  // namespace upcycle::report
