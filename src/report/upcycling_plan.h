// `upcycle plan`: the upcycling scaling law of Liew, Kato & Takase (arXiv 2502.03009, ICML 2025),
//   L(D1, D2) = A · D1^−α1 · D2^(−α2 + α3·ln D1) + E,
// D1 = dense pretraining tokens of the start checkpoint, D2 = tokens trained after upcycling, fitted
// to a study's upcycled runs (the recipe variant and every variant converting with the same flags from
// another dense checkpoint, `from:`), and L = A·C^−a + E fitted to the MoE-from-scratch run and to the
// dense lineage (pretraining + continuation), C = that model's total training FLOPs. The laws are then
// compared at equal extra compute X (docs/study.md's x axis, in FLOPs): the upcycled model at
// D2 = X / its FLOPs per token, the others at C = dense sunk cost + X. With a single D1 the
// interaction (α1, α3) is not identifiable and the D2-only law A·D2^−α2 + E is fitted instead.
// Fits: scaling_fit.h. Uncertainty: parameter σ from the fit covariance, crossover σ by the delta
// method through both fits. Non-goals: per-domain laws, laws in model size or sparsity.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "report/run_data.h"
#include "report/scaling_fit.h"

namespace upcycle::report {

struct PlanOptions {
  std::string recipe = "upcycle";            // the upcycled variant whose law is fitted
  std::string scratch;                       // the MoE-from-scratch variant; empty: the only MoE with no sunk cost
  std::string dense = "dense-continuation";  // the dense continuation variant
};

struct NamedValue {
  std::string name;
  double value = 0, sigma = 0;  // sigma NaN: not identifiable from these points
};

struct LawFit {
  std::string what;     // "upcycled", "from scratch", "dense"
  std::string form;     // the formula, in words
  std::vector<std::string> variants;  // the variants whose points were fitted
  ScalingFit fit;
  std::vector<NamedValue> params;  // in the paper's form (A, exponents, E)
  double x_min = 0, x_max = 0;     // the data's extra-compute range, FLOPs (the fitted range)
};

enum class CrossoverKind {
  kStopsBeating,  // upcycling is ahead at the first point and falls behind at `extra_flops`
  kOvertakes,     // upcycling is behind at the first point and gets ahead at `extra_flops`
  kAlwaysAhead,   // no crossing up to the horizon, upcycling ahead
  kNeverAhead,    // no crossing up to the horizon, upcycling behind
};

struct Crossover {
  std::string against;  // "from scratch" or "dense continuation"
  std::string variant;
  CrossoverKind kind = CrossoverKind::kAlwaysAhead;
  double extra_flops = 0, sigma = 0;  // the crossing and its delta-method σ (kStopsBeating, kOvertakes)
  bool extrapolated = false;          // beyond the largest extra compute any of the two fits saw
};

struct UpcyclingPlan {
  std::string study;
  double dense_sunk_flops = 0;
  std::string d1_unit;        // "tokens", or "dense FLOPs" when study.json has no dense.sunk_tokens
  std::vector<double> d1_values;  // distinct D1 of the upcycled variants, ascending
  double d1 = 0;                  // the recipe variant's D1: where crossovers are predicted
  double upcycled_flops_per_token = 0;
  bool interaction = false;   // the full law (≥ 2 distinct D1) or the D2-only one
  LawFit upcycled;
  std::optional<LawFit> scratch, dense;
  double horizon_flops = 0;   // crossovers are searched on (first upcycled point, horizon]: 10× the largest budget
  std::vector<Crossover> crossovers;
  std::vector<std::string> notes;  // what could not be done, and why

  // Predicted mean validation loss at extra compute X (FLOPs) of each law.
  double upcycled_loss(double extra_flops) const;
  double baseline_loss(const LawFit& law, double extra_flops) const;
};

// Fits the laws to a study (load_report_data of a study dir). Error naming the study when it lacks
// what the law needs: the recipe variant with evaluated points after its start. A missing
// from-scratch or dense continuation variant only drops that comparison (noted).
UpcyclingPlan fit_upcycling_plan(const ReportData& data, const PlanOptions& options = {});

// One line per finding ("upcycling stops beating from scratch at …"), as `upcycle plan` prints them.
std::vector<std::string> plan_findings(const UpcyclingPlan& plan);

}  // namespace upcycle::report
