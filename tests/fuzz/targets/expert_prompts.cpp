// Fuzz target (fuzz_targets.h): the bytes are a `convert --prompts` YAML (mergekit's experts list with
// positive/negative prompts). Bad input must be an Error.
#include <string>
#include <vector>

#include "core/error.h"
#include "recipes/mergekit_config.h"
#include "../fuzz_targets.h"

namespace upcycle::fuzz {

int fuzz_expert_prompts(const uint8_t* data, size_t size) {
  const auto path = write_scratch("prompts/prompts.yaml", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    std::vector<std::string> warnings;
    (void)recipes::read_expert_prompts_yaml(path, warnings);
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace upcycle::fuzz
