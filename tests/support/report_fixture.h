// A hand-made study directory for the report tests, written from the documented formats
// (docs/study.md, docs/training.md) rather than by `upcycle study`, with numbers chosen so the
// summary can be checked by hand: dense sunk cost 1e12 FLOPs, 10 steps of 1e11 FLOPs per variant,
// domains prose + code evaluated at steps 0, 5, 10. Final mean val loss: dense-continuation 3.5,
// upcycle 3.3 (Δ −0.2), moe-scratch 5.0; upcycle-noise has no run yet (pending). The dense model's
// own pretraining run (dense-pretrain/, study.json dense.pretrain_run, with dense.commands) is 10
// steps of 1e11 FLOPs too, evaluated at steps 0, 5, 10: x −100, −50, 0 %, mean loss 9.0, 6.5, 4.5.
// write_seeded_report_fixture: the same plan trained with three seeds (numbers at the function).
// Header-only.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/json.h"

namespace upcycle::test {

struct FixtureVariant {
  std::string name, kind;
  double sunk;
  std::vector<double> prose, code;  // eval loss at steps 0, 5, 10
};

inline Json fixture_layers(int experts, const std::vector<double>& load) {
  Json layers = Json::array();
  for (int layer : {1, 3}) layers.push_back({{"layer", layer}, {"load", load}, {"dropped", 0.0}, {"entropy", 1.2}, {"top1", 0.5}, {"aux", 1.0}});
  return layers;
}

inline void write_fixture_analysis(const std::filesystem::path& dir, int step, bool flops_known, double spec) {
  std::filesystem::create_directories(dir);
  Json layers = Json::array();
  for (int layer : {1, 3})
    layers.push_back({{"layer", layer}, {"experts", 4}, {"top_k", 2}, {"load", {0.25, 0.25, 0.25, 0.25}}, {"dropped", 0.0},
                      {"domain_load", {{"prose", {0.4, 0.3, 0.2, 0.1}}, {"code", {0.1, 0.2, 0.3, 0.4}}}},
                      {"domain_specialization", spec}, {"expert_similarity_mean", 1.0 - spec}, {"dense_similarity_mean", 1.0 - spec / 2}});
  Json a = {{"format", "upcycle-analysis"}, {"version", 1}, {"checkpoint", "x"}, {"step", step},
            {"flops", flops_known ? Json(step * 1e11) : Json(nullptr)}, {"dense", "models/dense"}, {"seq_len", 16},
            {"domains", Json::array()}, {"layers", layers},
            {"summary", {{"expert_similarity_mean", 1.0 - spec}, {"dense_similarity_mean", 1.0 - spec / 2}, {"domain_specialization", spec},
                         {"entropy", 1.2}, {"top1", 0.5}, {"dropped", 0.0}}}};
  char name[32];
  std::snprintf(name, sizeof name, "step-%08d.json", step);
  std::ofstream(dir / name) << a.dump(1);
}

// A train run directory: config.json + metrics.jsonl with eval records at steps 0, 5, 10 (flops =
// step · 1e11) and train records in between; MoE runs log per-layer loads.
inline void write_fixture_run(const std::filesystem::path& dir, const FixtureVariant& v) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << Json{{"format", "upcycle-train-run"}, {"version", 1}, {"flops_per_token", {{"train", 1e9}}},
                                             {"tokens_per_step", 100}, {"options", {{"steps", 10}}}}.dump();
  std::ofstream m(dir / "metrics.jsonl");
  const bool moe = v.kind == "moe";
  for (int i = 0; i < 3; ++i) {
    const int step = i * 5;
    for (int d = 0; d < 2; ++d) {
      Json r = {{"kind", "eval"}, {"step", step}, {"tokens", step * 100}, {"flops", step * 1e11}, {"domain", d ? "code" : "prose"},
                {"loss", d ? v.code[i] : v.prose[i]}, {"ppl", 1.0}, {"eval_tokens", d ? 100 : 300}};
      if (moe) r["moe"] = fixture_layers(4, d ? std::vector<double>{0.1, 0.2, 0.3, 0.4} : std::vector<double>{0.4, 0.3, 0.2, 0.1});
      m << r.dump() << "\n";
    }
    for (int s = step + 1; s <= step + 5 && s <= 10 && i < 2; ++s) {
      Json t = {{"kind", "train"}, {"step", s}, {"tokens", s * 100}, {"flops", s * 1e11}, {"loss", 3.0}, {"aux", 1.0}, {"lr", 1e-3}};
      if (moe) t["moe"] = fixture_layers(4, {0.25, 0.25, 0.25, 0.25});
      m << t.dump() << "\n";
    }
  }
  if (v.name == "upcycle") m << R"({"kind": "eval", "step": 10, "flo)";  // a record being written
}

inline void write_report_fixture(const std::filesystem::path& root) {
  const std::vector<FixtureVariant> variants{{"dense-continuation", "dense", 1e12, {4.0, 3.5, 3.0}, {5.0, 4.5, 4.0}},
                                             {"upcycle", "moe", 1e12, {4.0, 3.2, 2.8}, {5.0, 4.2, 3.8}},
                                             {"moe-scratch", "moe", 0.0, {9.0, 6.0, 4.5}, {9.0, 7.0, 5.5}},
                                             {"upcycle-noise", "moe", 1e12, {}, {}}};
  Json study = {{"format", "upcycle-study"}, {"version", 1}, {"name", "fixture <study>"}, {"spec", "/x/SPEC.yaml"},
                {"spec_sha256", "00"}, {"dense", {{"checkpoint", "dense-pretrain/checkpoints/step-00000010"}, {"sunk_flops", 1e12}, {"sunk_tokens", 1000},
                           {"pretrain_run", "dense-pretrain"},
                           {"commands", {"upcycle init --arch llama --layers 2 models/dense-init",
                                         "upcycle train --model models/dense-init --data data/prose --out dense-pretrain --steps 10"}}}},
                {"extra_compute", 1.0}, {"domains", {"prose", "code"}}, {"variants", Json::array()}};
  for (const auto& v : variants) {
    const std::string run = "runs/" + v.name;
    study["variants"].push_back({{"name", v.name}, {"kind", v.kind}, {"description", v.name + " & co"}, {"model", "models/" + v.name},
                                 {"run", run}, {"sunk_flops", v.sunk}, {"budget_flops", 1e12}, {"steps", 10}, {"tokens_per_step", 100},
                                 {"train_flops_per_token", 1e9},
                                 {"commands", {"upcycle train --model models/" + v.name + " --out " + run + " --steps 10"}},
                                 {"status", v.prose.empty() ? "pending" : "done"}});
    if (v.prose.empty()) continue;
    const std::filesystem::path dir = root / run;
    write_fixture_run(dir, v);
    const bool moe = v.kind == "moe";
    if (moe) {
      if (v.name == "upcycle") write_fixture_analysis(dir / "analysis", 0, false, 0.0);
      write_fixture_analysis(dir / "analysis", 10, true, 0.2);
    }
  }
  write_fixture_run(root / "dense-pretrain", {"dense-pretrain", "dense", 0.0, {9.0, 6.0, 4.0}, {9.0, 7.0, 5.0}});
  std::ofstream(root / "study.json") << study.dump(1);
}

// A study trained with `seeds: [1, 2, 3]` (study.json variants[].runs, runs/<variant>/seed-<S>): the
// same plan as above (dense sunk cost 1e12, 10 steps of 1e11 FLOPs, evals at steps 0, 5, 10 on prose
// and code), final losses per seed (prose, code → mean):
//   dense-continuation  s1 (3.0, 4.0) 3.5   s2 (3.2, 4.2) 3.7   s3 (2.9, 3.9) 3.4    mean 3.5333
//   upcycle             s1 (2.8, 3.8) 3.3   s2 (3.1, 4.1) 3.6   s3 (3.0, 4.0) 3.5    mean 3.4667
//                       paired Δ −0.2, −0.1, +0.1: mean −0.0667, the sign varies
//   upcycle-top1        s1 (2.9, 3.9) 3.4   s2 (3.1, 4.1) 3.6   s3 (2.85, 3.85) 3.35 mean 3.45
//                       paired Δ −0.1, −0.1, −0.05: mean −0.0833, lower for every seed
// Every seed starts at (4.0, 5.0) and is at its final value + 0.5 at step 5. With `pending_seed`,
// upcycle-top1's seed 3 has no run yet (its study.json entry says "pending").
inline void write_seeded_report_fixture(const std::filesystem::path& root, bool pending_seed = false) {
  struct SeedFinal {
    std::string variant, kind;
    std::vector<std::pair<double, double>> finals;  // (prose, code) for seeds 1, 2, 3
  };
  const std::vector<SeedFinal> variants{{"dense-continuation", "dense", {{3.0, 4.0}, {3.2, 4.2}, {2.9, 3.9}}},
                                        {"upcycle", "moe", {{2.8, 3.8}, {3.1, 4.1}, {3.0, 4.0}}},
                                        {"upcycle-top1", "moe", {{2.9, 3.9}, {3.1, 4.1}, {2.85, 3.85}}}};
  Json study = {{"format", "upcycle-study"}, {"version", 1}, {"name", "seeded"}, {"spec", "/x/SPEC.yaml"}, {"spec_sha256", "00"},
                {"dense", {{"checkpoint", "dense/step-10"}, {"sunk_flops", 1e12}, {"pretrain_run", nullptr}}},
                {"extra_compute", 1.0}, {"domains", {"prose", "code"}}, {"seeds", {1, 2, 3}}, {"variants", Json::array()}};
  for (const auto& v : variants) {
    Json runs = Json::array(), all = Json::array();
    bool any_pending = false;
    for (int seed = 1; seed <= 3; ++seed) {
      const std::string run = "runs/" + v.variant + "/seed-" + std::to_string(seed);
      const std::string train = "upcycle train --out " + run + " --seed " + std::to_string(seed);
      const bool pending = pending_seed && v.variant == "upcycle-top1" && seed == 3;
      any_pending = any_pending || pending;
      runs.push_back({{"seed", seed}, {"model", "models/" + v.variant + "/seed-" + std::to_string(seed)}, {"run", run},
                      {"commands", {train}}, {"status", pending ? "pending" : "done"}});
      all.push_back(train);
      if (pending) continue;
      const auto [prose, code] = v.finals[size_t(seed - 1)];
      write_fixture_run(root / run, {v.variant + " seed", v.kind, 1e12, {4.0, prose + 0.5, prose}, {5.0, code + 0.5, code}});
      if (v.kind == "moe") write_fixture_analysis(root / run / "analysis", 10, true, 0.1 * seed);
    }
    study["variants"].push_back({{"name", v.variant}, {"kind", v.kind}, {"description", v.variant}, {"start", "dense/step-10"},
                                 {"sunk_flops", 1e12}, {"budget_flops", 1e12}, {"steps", 10}, {"tokens_per_step", 100},
                                 {"train_flops_per_token", 1e9}, {"seeds", {1, 2, 3}}, {"commands", all},
                                 {"status", any_pending ? "running" : "done"}, {"runs", runs}});
  }
  std::ofstream(root / "study.json") << study.dump(1);
}

}  // namespace upcycle::test
