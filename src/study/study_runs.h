// A study's runs and where they live (docs/study.md, "Seeds"): one run per variant, or with `seeds:`
// one per (variant, seed). Pure functions of the spec, so the runner, `study --check` and the tests
// agree on every name and flag.
// Layout: without seeds runs/<variant> and models/<variant>, exactly as before seeds existed (older
// studies resume unchanged); with seeds runs/<variant>/seed-<S> and models/<variant>/seed-<S> for
// every seed alike (no seed is special, and no variant name can collide with a seed directory).
// Seeds: train always gets --seed S (the data order; the router jitter); convert gets --seed S too
// (router init, noise, drop, random experts, from-scratch init) unless the variant's `convert:` fixes
// `seed:` itself, which is kept for every seed: an explicit value is never overridden.
// A learning-rate sweep's runs are variants named "<sweep>/lr-<lr>" (study_spec.h), so they live in
// runs/<sweep>/lr-<lr>[/seed-<S>] with no code of their own here.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "study/study_spec.h"

namespace upcycle::study {

// The seed of each run of a variant, in the spec's order: {nullopt} for a study without seeds.
std::vector<std::optional<int64_t>> run_seeds(const StudySpec& spec);

// Relative to STUDY_DIR: "runs/<variant>" or "runs/<variant>/seed-<S>"; likewise "models/…".
std::string run_dir(const std::string& variant, std::optional<int64_t> seed);
std::string model_dir(const std::string& variant, std::optional<int64_t> seed);
// "seed-<S>": the last part of a seeded run's (or model's) directory.
std::string seed_dir_name(int64_t seed);

// The `upcycle train` flags of one run: variant_train_flags (the study's `train:`, the pretraining
// schedule for a variant trained from scratch, the variant's `train:`), plus --seed S.
Flags run_train_flags(const StudySpec& spec, const VariantSpec& variant, std::optional<int64_t> seed);
// The `upcycle convert` flags of one run (nullopt: no conversion), plus --seed S unless the variant
// fixes its convert seed.
std::optional<Flags> run_convert_flags(const VariantSpec& variant, std::optional<int64_t> seed);
// The variant's `convert:` names `seed:`: its conversion is the same for every study seed.
bool fixes_convert_seed(const VariantSpec& variant);

}  // namespace upcycle::study
