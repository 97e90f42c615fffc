// Fuzz target (fuzz_targets.h): arbitrary bytes through parse_json + parse_model_config. Only upcycle::Error may
// escape as a rejection; anything else (nlohmann type_error/out_of_range, logic_error from a failed
// UPCYCLE_CHECK, a sanitizer report) is a finding. Accepted configs must also survive the writer:
// parse(to_json(c)) succeeds and is a fixed point of to_json, and the weight table builds.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "io/model_config.h"
#include "io/weight_table.h"
#include "../fuzz_targets.h"

namespace upcycle::fuzz {

int fuzz_config(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ModelConfig config;
  try {
    config = parse_model_config(parse_json(text, "config.json", "config.json"), "config.json");
  } catch (const Error&) {
    return 0;
  }
  // From here on the config was accepted: any exception, even an upcycle::Error, is a finding.
  const Json written = model_config_to_json(config);
  const ModelConfig again = parse_model_config(written, "config.json");
  if (model_config_to_json(again) != written) fuzz_finding("config.json writer output does not re-read to itself");
  (void)count_parameters(config);
  // Listing every weight is linear in layers * experts; keep inputs the fuzzer inflates cheap.
  if (config.num_hidden_layers * (config.num_experts + 16) <= 4096) {
    std::map<std::string, Shape, std::less<>> on_disk;
    for (auto& t : disk_tensors(config, config.is_moe() ? ExpertLayout::kFused : ExpertLayout::kNone))
      on_disk.emplace(t.name, t.shape);
    if (!WeightTable::build(config, on_disk).ok()) fuzz_finding("accepted config's own tensors do not build a weight table");
  }
  return 0;
}

}  // namespace upcycle::fuzz
