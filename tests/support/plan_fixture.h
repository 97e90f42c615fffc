// A hand-made study whose loss curves follow known laws exactly, for `upcycle plan`: dense pretraining
// S = 1e12 FLOPs on 1e9 tokens, every run 1000 FLOPs per token, one val domain. With t = X / S (extra
// compute as a fraction of S), the curves are
//   upcycle            L = 2.10 + 5e7 / D2          = 2.10 + 0.05 / t       (D2 = X / 1000 tokens)
//   moe-from-scratch   L = 2.00 + 3.75e11 / C       = 2.00 + 0.375 / (1 + t) at C = S + X
//   dense lineage      L = 2.05 + 3.125e11 / C      = 2.05 + 0.3125 / (1 + t)
// so upcycle − scratch = 0.1 + 0.05/t − 0.375/(1+t) = 0 ⇔ 0.1 t² − 0.225 t + 0.05 = 0 ⇔ t ∈ {0.25, 2},
// and upcycle − dense = 0.05 + 0.05/t − 0.3125/(1+t) = 0 ⇔ 0.05 t² − 0.2125 t + 0.05 = 0 ⇔ t ∈ {0.25, 4}.
// The upcycled run is evaluated from t = 0.3 (ahead of both) to t = 1: upcycling stops beating from
// scratch at X = 2e12 FLOPs (+200 %) and dense continuation at 4e12 (+400 %), both extrapolated.
// With `d1_sweep`, a second upcycled variant (same convert flags, `from:` half the pretraining,
// D1 = 5e8) follows the interaction law the writer is given instead. Header-only.
#pragma once

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/json.h"

namespace upcycle::test {

inline constexpr double kPlanSunk = 1e12, kPlanFlopsPerToken = 1000;

// A run dir with one val domain evaluated at each of `run_flops` (tokens = flops / 1000).
inline void write_plan_run(const std::filesystem::path& dir, const std::vector<double>& run_flops,
                           const std::function<double(double run_flops)>& loss) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << Json{{"format", "upcycle-train-run"}, {"version", 1},
                                             {"flops_per_token", {{"train", kPlanFlopsPerToken}}}, {"tokens_per_step", 1000},
                                             {"options", {{"steps", int(run_flops.size())}}}}.dump();
  std::ofstream m(dir / "metrics.jsonl");
  for (size_t i = 0; i < run_flops.size(); ++i)
    m << Json{{"kind", "eval"}, {"step", int(i)}, {"tokens", run_flops[i] / kPlanFlopsPerToken}, {"flops", run_flops[i]},
              {"domain", "prose"}, {"loss", loss(run_flops[i])}, {"ppl", 1.0}, {"eval_tokens", 100}}
             .dump()
      << "\n";
}

inline std::vector<double> plan_grid(double lo, double hi, int n) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(lo + (hi - lo) * i / (n - 1));
  return out;
}

// `upcycled_loss(d1, d2)` gives the upcycled variants' curves (default: the D2-only law of the header).
inline void write_plan_fixture(const std::filesystem::path& root, bool with_scratch = true, bool d1_sweep = false,
                               std::function<double(double d1, double d2)> upcycled_loss = nullptr) {
  if (!upcycled_loss) upcycled_loss = [](double, double d2) { return 2.10 + 5e7 / d2; };
  Json study = {{"format", "upcycle-study"}, {"version", 1}, {"name", "plan-fixture"}, {"spec", "/x/SPEC.yaml"}, {"spec_sha256", "00"},
                {"dense", {{"checkpoint", "dense-pretrain/checkpoints/step-00000010"}, {"sunk_flops", kPlanSunk}, {"sunk_tokens", 1e9},
                           {"pretrain_run", "dense-pretrain"}}},
                {"extra_compute", 1.0}, {"domains", {"prose"}}, {"variants", Json::array()}};
  const auto add = [&](const std::string& name, const std::string& kind, double sunk, const std::string& convert) {
    Json commands = Json::array();
    if (!convert.empty()) commands.push_back("upcycle convert dense/start models/" + name + " " + convert);
    commands.push_back("upcycle train --model models/" + name + " --out runs/" + name);
    study["variants"].push_back({{"name", name}, {"kind", kind}, {"sunk_flops", sunk}, {"budget_flops", kPlanSunk}, {"steps", 10},
                                 {"tokens_per_step", 1000}, {"train_flops_per_token", kPlanFlopsPerToken}, {"run", "runs/" + name},
                                 {"commands", commands}, {"status", "done"}});
  };
  add("dense-continuation", "dense", kPlanSunk, "");
  write_plan_run(root / "runs/dense-continuation", plan_grid(0, kPlanSunk, 6),
                 [](double f) { return 2.05 + 3.125e11 / (kPlanSunk + f); });
  write_plan_run(root / "dense-pretrain", plan_grid(kPlanSunk / 10, kPlanSunk, 10), [](double f) { return 2.05 + 3.125e11 / f; });
  add("upcycle", "moe", kPlanSunk, "--preset komatsuzaki2022 --experts 8");
  write_plan_run(root / "runs/upcycle", plan_grid(0.3 * kPlanSunk, kPlanSunk, 8),
                 [&](double f) { return upcycled_loss(1e9, f / kPlanFlopsPerToken); });
  if (d1_sweep) {
    add("upcycle-from-5", "moe", kPlanSunk / 2, "--preset komatsuzaki2022 --experts 8");
    write_plan_run(root / "runs/upcycle-from-5", plan_grid(0.3 * kPlanSunk, kPlanSunk, 8),
                   [&](double f) { return upcycled_loss(5e8, f / kPlanFlopsPerToken); });
  }
  add("upcycle-top1", "moe", kPlanSunk, "--preset komatsuzaki2022 --experts 8 --top-k 1");  // another recipe: not fitted
  write_plan_run(root / "runs/upcycle-top1", plan_grid(0.3 * kPlanSunk, kPlanSunk, 8), [](double) { return 9.0; });
  if (with_scratch) {
    add("moe-from-scratch", "moe", 0, "--preset komatsuzaki2022 --experts 8 --from-scratch");
    write_plan_run(root / "runs/moe-from-scratch", plan_grid(kPlanSunk / 10, kPlanSunk, 10),
                   [](double f) { return 2.00 + 3.75e11 / f; });
  }
  std::ofstream(root / "study.json") << study.dump(1);
}

}  // namespace upcycle::test
