// Fuzz target (fuzz_targets.h): the bytes are a mergekit MoE YAML. Parsing must reject bad YAML, bad
// keys and missing models with an Error; an accepted config is planned (plan_mergekit_moe), which may
// also only throw Error.
#include <string>

#include "core/error.h"
#include "recipes/mergekit_config.h"
#include "../fuzz_targets.h"

namespace upcycle::fuzz {

int fuzz_mergekit_yaml(const uint8_t* data, size_t size) {
  const auto path = write_scratch("mergekit/moe.yaml", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const recipes::MergekitMoeConfig config = recipes::parse_mergekit_moe_yaml(path);
    if (config.experts.empty()) fuzz_finding("accepted mergekit config has no experts");
    (void)recipes::plan_mergekit_moe(config);
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace upcycle::fuzz
