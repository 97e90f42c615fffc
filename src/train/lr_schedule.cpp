// Learning-rate schedules (contract in lr_schedule.h): warmup, then the kind's curve, in double.
#include "train/lr_schedule.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <string>
#include <utility>

#include "core/error.h"

namespace upcycle::train {
namespace {

constexpr std::array<std::pair<ScheduleKind, std::string_view>, 4> kNames{{
    {ScheduleKind::kConstant, "constant"},
    {ScheduleKind::kCosine, "cosine"},
    {ScheduleKind::kWsd, "wsd"},
    {ScheduleKind::kInverseSqrt, "inverse-sqrt"},
}};

std::string name_list() {
  std::string list;
  for (const auto& [kind, name] : kNames) list += (list.empty() ? "" : ", ") + std::string(name);
  return list;
}

}  // namespace

ScheduleKind schedule_kind_from_name(std::string_view name) {
  for (const auto& [kind, spelled] : kNames)
    if (spelled == name) return kind;
  throw Error("unknown learning-rate schedule '" + std::string(name) + "' (choose one of: " + name_list() + ")");
}

std::string_view schedule_kind_name(ScheduleKind kind) {
  for (const auto& [k, name] : kNames)
    if (k == kind) return name;
  UPCYCLE_CHECK(false, "unknown ScheduleKind");
}

void LrSchedule::validate() const {
  auto bad = [](const std::string& what) { throw Error("learning-rate schedule: " + what); };
  if (!(peak_lr > 0) || !std::isfinite(peak_lr)) bad("the peak learning rate must be positive");
  if (!(min_lr >= 0) || min_lr > peak_lr) bad("the minimum learning rate must lie in [0, peak]");
  if (!(warmup_start_lr >= 0) || warmup_start_lr > peak_lr) bad("the warmup start learning rate must lie in [0, peak]");
  if (warmup_steps < 0 || total_steps < 1) bad("warmup steps must be ≥ 0 and total steps ≥ 1");
  if (!(decay_fraction >= 0 && decay_fraction <= 1)) bad("the WSD decay fraction must lie in [0, 1]");
  if (timescale < 0 || step_offset < 0) bad("the inverse-sqrt timescale and step offset must be ≥ 0");
}

double LrSchedule::lr(int64_t step) const {
  UPCYCLE_CHECK(step >= 0, "lr() of a negative step");
  if (step < warmup_steps)
    return warmup_start_lr + (peak_lr - warmup_start_lr) * double(step + 1) / double(warmup_steps);
  const int64_t last = total_steps - 1;
  switch (kind) {
    case ScheduleKind::kConstant:
      return peak_lr;
    case ScheduleKind::kCosine: {
      // u = 0 at the first step after warmup, 1 at the last step (and beyond).
      const int64_t span = last - warmup_steps;
      const double u = span > 0 ? std::min(1.0, double(step - warmup_steps) / double(span)) : 1.0;
      return min_lr + (peak_lr - min_lr) * (1.0 + std::cos(std::numbers::pi * u)) / 2.0;
    }
    case ScheduleKind::kWsd: {
      if (decay_fraction <= 0) return peak_lr;
      const int64_t start = std::max(warmup_steps, total_steps - wsd_decay_steps());
      if (step >= last) return min_lr;
      if (step <= start) return peak_lr;
      return peak_lr + (min_lr - peak_lr) * double(step - start) / double(last - start);
    }
    case ScheduleKind::kInverseSqrt: {
      const double tau = double(timescale > 0 ? timescale : std::max<int64_t>(warmup_steps, 1));
      const double s = double(step + step_offset);
      if (s < tau) return peak_lr;
      return std::max(min_lr, peak_lr * std::sqrt(tau / s));
    }
  }
  UPCYCLE_CHECK(false, "unknown ScheduleKind");
}

int64_t LrSchedule::wsd_decay_steps() const {
  return std::llround(decay_fraction * double(total_steps));
}

}  // namespace upcycle::train
