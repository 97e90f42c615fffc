// Named recipes for `upcycle convert --preset NAME`, each a set of flag values taken from its
// source (paper and/or released code); flags given explicitly on the command line override them.
// docs/recipes.md explains every preset with its equations; keep the two in step.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace upcycle::recipes {

struct ConvertPreset {
  std::string_view name;
  std::string_view source;   // paper and code the values come from
  std::string_view summary;
  std::vector<std::pair<std::string_view, std::string_view>> flags;  // --flag value ("" for switches)
};

const std::vector<ConvertPreset>& convert_presets();
// Throws Error("unknown preset 'x' (choose one of: …)").
const ConvertPreset& find_convert_preset(std::string_view name);
std::string convert_preset_names();  // "komatsuzaki2022, drop-upcycling, …"

}  // namespace upcycle::recipes
