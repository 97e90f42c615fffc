// Learning-rate schedules at hand-computed points: warmup's first and last step (and a re-warmup from
// warmup_start_lr), cosine's midpoint (peak+min)/2 and last step = min, WSD's plateau, decay start and
// end, inverse-sqrt continuing a dense run (lr_moe(s) == lr_dense(s + offset)) and its floor; names
// round-trip and unknown names are Errors listing the choices.
#include <gtest/gtest.h>

#include <cmath>

#include "support/expect_error.h"
#include "train/lr_schedule.h"

namespace upcycle::train {
namespace {

LrSchedule schedule(ScheduleKind kind, int64_t warmup, int64_t total) {
  LrSchedule s;
  s.kind = kind;
  s.peak_lr = 1e-3;
  s.min_lr = 1e-4;
  s.warmup_steps = warmup;
  s.total_steps = total;
  return s;
}

TEST(LrSchedule, WarmupIsLinearFromStartToPeak) {
  for (ScheduleKind kind : {ScheduleKind::kConstant, ScheduleKind::kCosine, ScheduleKind::kWsd,
                            ScheduleKind::kInverseSqrt}) {
    SCOPED_TRACE(schedule_kind_name(kind));
    LrSchedule s = schedule(kind, 10, 100);
    EXPECT_DOUBLE_EQ(s.lr(0), 1e-4);   // 1e-3 · 1/10
    EXPECT_DOUBLE_EQ(s.lr(4), 5e-4);   // 1e-3 · 5/10
    EXPECT_DOUBLE_EQ(s.lr(9), 1e-3);   // last warmup step reaches the peak
    EXPECT_DOUBLE_EQ(s.lr(10), 1e-3);  // first step after warmup: u = 0 (or below the rsqrt timescale)
    s.warmup_start_lr = 2e-4;          // re-warmup: 2e-4 + 8e-4·(s+1)/10
    EXPECT_DOUBLE_EQ(s.lr(0), 2.8e-4);
    EXPECT_DOUBLE_EQ(s.lr(4), 6e-4);
    EXPECT_DOUBLE_EQ(s.lr(9), 1e-3);
  }
}

TEST(LrSchedule, ConstantAndCosine) {
  const LrSchedule constant = schedule(ScheduleKind::kConstant, 10, 100);
  EXPECT_DOUBLE_EQ(constant.lr(50), 1e-3);
  EXPECT_DOUBLE_EQ(constant.lr(99), 1e-3);
  // Cosine over steps 10..100: u = (s − 10)/90.
  const LrSchedule cosine = schedule(ScheduleKind::kCosine, 10, 101);
  EXPECT_DOUBLE_EQ(cosine.lr(55), (1e-3 + 1e-4) / 2);  // u = 1/2
  EXPECT_NEAR(cosine.lr(100), 1e-4, 1e-18);            // last step: min
  EXPECT_NEAR(cosine.lr(150), 1e-4, 1e-18);            // beyond: stays at min
  // u = 1/3: min + (peak − min)·(1 + cos(π/3))/2 = 1e-4 + 9e-4·0.75.
  EXPECT_DOUBLE_EQ(cosine.lr(40), 1e-4 + 9e-4 * 0.75);
  // No warmup: the first step is the peak.
  EXPECT_DOUBLE_EQ(schedule(ScheduleKind::kCosine, 0, 5).lr(0), 1e-3);
  EXPECT_DOUBLE_EQ(schedule(ScheduleKind::kCosine, 0, 5).lr(2), 5.5e-4);
}

TEST(LrSchedule, WsdPlateauThenLinearDecay) {
  LrSchedule s = schedule(ScheduleKind::kWsd, 10, 100);
  s.decay_fraction = 0.2;  // decay starts at 100 − 20 = 80: lr(80) = peak, lr(99) = min
  EXPECT_EQ(s.wsd_decay_steps(), 20);
  EXPECT_DOUBLE_EQ(s.lr(10), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr(50), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr(79), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr(80), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr(81), 1e-3 - 9e-4 / 19);  // one of 19 decay intervals
  EXPECT_DOUBLE_EQ(s.lr(99), 1e-4);
  EXPECT_DOUBLE_EQ(s.lr(120), 1e-4);
  s.decay_fraction = 0;  // no decay phase
  EXPECT_DOUBLE_EQ(s.lr(99), 1e-3);
  s.decay_fraction = 1;  // decays right after warmup: s0 = max(10, 0) = 10, linear to step 99
  EXPECT_DOUBLE_EQ(s.lr(10), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr(99), 1e-4);
  EXPECT_NEAR(s.lr(54), 1e-3 - 9e-4 * 44.0 / 89.0, 1e-18);
}

TEST(LrSchedule, InverseSqrtContinuesADenseRun) {
  LrSchedule dense = schedule(ScheduleKind::kInverseSqrt, 100, 10000);
  dense.min_lr = 0;
  EXPECT_DOUBLE_EQ(dense.lr(100), 1e-3);            // timescale defaults to the warmup: sqrt(100/100)
  EXPECT_DOUBLE_EQ(dense.lr(399), 1e-3 * std::sqrt(100.0 / 399.0));
  EXPECT_DOUBLE_EQ(dense.lr(400), 5e-4);            // sqrt(100/400) = 1/2
  LrSchedule moe = schedule(ScheduleKind::kInverseSqrt, 0, 500);
  moe.min_lr = 0;
  moe.timescale = 100;
  moe.step_offset = 3000;  // the dense run's step count
  for (int64_t s : {0, 1, 17, 499}) EXPECT_DOUBLE_EQ(moe.lr(s), dense.lr(s + 3000)) << s;
  EXPECT_DOUBLE_EQ(moe.lr(600), 1e-3 * std::sqrt(100.0 / 3600.0));
  moe.min_lr = 2e-4;  // floored: 1e-3·sqrt(100/3600) = 1.67e-4 < 2e-4
  EXPECT_DOUBLE_EQ(moe.lr(600), 2e-4);
  LrSchedule early = schedule(ScheduleKind::kInverseSqrt, 0, 100);
  early.timescale = 50;  // before s reaches the timescale: peak
  EXPECT_DOUBLE_EQ(early.lr(20), 1e-3);
  EXPECT_DOUBLE_EQ(early.lr(200), 5e-4);  // sqrt(50/200)
}

TEST(LrSchedule, NamesAndErrors) {
  for (ScheduleKind kind : {ScheduleKind::kConstant, ScheduleKind::kCosine, ScheduleKind::kWsd,
                            ScheduleKind::kInverseSqrt})
    EXPECT_EQ(schedule_kind_from_name(schedule_kind_name(kind)), kind);
  EXPECT_EQ(schedule_kind_name(ScheduleKind::kInverseSqrt), "inverse-sqrt");
  EXPECT_UPCYCLE_ERROR(schedule_kind_from_name("linear"),
                       "unknown learning-rate schedule 'linear' (choose one of: constant, cosine, wsd, inverse-sqrt)",
                       "");
  LrSchedule s = schedule(ScheduleKind::kCosine, 10, 100);
  s.validate();
  s.min_lr = 2e-3;
  EXPECT_UPCYCLE_ERROR(s.validate(), "minimum learning rate", "");
  s = schedule(ScheduleKind::kWsd, 10, 100);
  s.decay_fraction = 1.5;
  EXPECT_UPCYCLE_ERROR(s.validate(), "decay fraction", "");
}

}  // namespace
}  // namespace upcycle::train
