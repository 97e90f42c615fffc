// Fuzz target (fuzz_targets.h): the bytes are a study spec (SPEC.yaml). parse_study_spec must reject
// bad YAML, keys and values with an Error; an accepted spec has at least one variant, all named.
#include <string>

#include "core/error.h"
#include "study/study_spec.h"
#include "../fuzz_targets.h"

namespace upcycle::fuzz {

int fuzz_study_spec(const uint8_t* data, size_t size) {
  const auto path = write_scratch("study/spec.yaml", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const study::StudySpec spec = study::parse_study_spec(path);
    for (const auto& v : spec.variants)
      if (v.name.empty()) fuzz_finding("accepted study spec has a variant without a name");
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace upcycle::fuzz
