// Learning-rate schedules, as a pure function of the step index s (0-based: the update about to be
// applied). Every kind starts with a linear warmup from warmup_start_lr to peak_lr over warmup_steps
// (lr(s) = start + (peak − start)·(s+1)/warmup for s < warmup); warmup_start_lr > 0 is a re-warmup
// from where an earlier run ended. After warmup, with u = (s − warmup)/(total − 1 − warmup), clamped
// to [0, 1] (u = 0 at the first step after warmup, 1 at the last step s = total − 1 and beyond):
//   constant      peak
//   cosine        min + (peak − min)·(1 + cos(π·u))/2
//   wsd           peak until the last decay_fraction of the run, then linear to min at the last step:
//                 with s0 = max(warmup, total − round(decay_fraction·total)), lr(s0) = peak and lr
//                 falls linearly to lr(total − 1) = min (decay_fraction 0: peak throughout)
//   inverse-sqrt  peak·sqrt(timescale / (s + step_offset)) once s + step_offset ≥ timescale, floored
//                 at min; step_offset continues a dense run's schedule (its step count), so an upcycled
//                 run picks up the curve where the dense run left it (the paper's setting); give
//                 it the dense run's timescale too, so lr_moe(s) = lr_dense(s + step_offset)
// Cosine and WSD stay at min past the last step; before s + step_offset reaches timescale,
// inverse-sqrt holds peak.
// Against transformers' get_*_schedule_with_warmup: warmup is its curve one index ahead (no zero-lr
// first update), the decay its curve at the same index with num_training_steps = total − 1 (tested
// step by step: tests/interop/test_lr_schedules_vs_transformers.py; docs/training.md).
// Non-goals: restarts, per-parameter schedules.
#pragma once

#include <cstdint>
#include <string_view>

namespace upcycle::train {

enum class ScheduleKind { kConstant, kCosine, kWsd, kInverseSqrt };

// "constant" | "cosine" | "wsd" | "inverse-sqrt"; nullopt-free: throws Error for anything else.
ScheduleKind schedule_kind_from_name(std::string_view name);
std::string_view schedule_kind_name(ScheduleKind kind);

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::kCosine;
  double peak_lr = 3e-4;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  double warmup_start_lr = 0.0;
  int64_t total_steps = 1;       // this run's steps; cosine and WSD reach min_lr at the last step
  double decay_fraction = 0.2;   // WSD
  int64_t timescale = 0;         // inverse-sqrt; 0 = max(warmup_steps, 1)
  int64_t step_offset = 0;       // inverse-sqrt

  double lr(int64_t step) const;
  // Throws Error (no file: these are flag values) for a non-positive peak, min or warmup start
  // outside [0, peak], negative step counts, total < 1, decay_fraction outside [0, 1].
  void validate() const;
  int64_t wsd_decay_steps() const;  // round(decay_fraction · total_steps)
};

}  // namespace upcycle::train
