// See study_runs.h.
#include "study/study_runs.h"

namespace upcycle::study {
namespace {

std::string under(const std::string& top, const std::string& variant, std::optional<int64_t> seed) {
  return top + "/" + variant + (seed ? "/" + seed_dir_name(*seed) : "");
}

}  // namespace

std::vector<std::optional<int64_t>> run_seeds(const StudySpec& spec) {
  if (spec.seeds.empty()) return {std::nullopt};
  return {spec.seeds.begin(), spec.seeds.end()};
}

std::string seed_dir_name(int64_t seed) { return "seed-" + std::to_string(seed); }
std::string run_dir(const std::string& variant, std::optional<int64_t> seed) { return under("runs", variant, seed); }
std::string model_dir(const std::string& variant, std::optional<int64_t> seed) { return under("models", variant, seed); }

Flags run_train_flags(const StudySpec& spec, const VariantSpec& variant, std::optional<int64_t> seed) {
  Flags flags = variant_train_flags(spec, variant);
  if (seed) flags = merge_flags(flags, {{"seed", {std::to_string(*seed)}}});
  return flags;
}

bool fixes_convert_seed(const VariantSpec& variant) { return variant.convert && has_flag(*variant.convert, "seed"); }

std::optional<Flags> run_convert_flags(const VariantSpec& variant, std::optional<int64_t> seed) {
  if (!variant.convert) return std::nullopt;
  Flags flags = *variant.convert;
  if (seed && !fixes_convert_seed(variant)) flags.push_back({"seed", {std::to_string(*seed)}});
  return flags;
}

}  // namespace upcycle::study
