// Fuzz target (fuzz_targets.h): the bytes are a checkpoint's trainer_state.json. An accepted state
// must survive the writer: from_json(to_json(s)) is a fixed point of to_json.
#include <string>

#include "core/error.h"
#include "core/json.h"
#include "train/train_checkpoint.h"
#include "../fuzz_targets.h"

namespace upcycle::fuzz {

int fuzz_trainer_state(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  train::TrainerState state;
  try {
    state = train::trainer_state_from_json(parse_json(text, "trainer_state.json", "trainer_state.json"), "trainer_state.json");
  } catch (const Error&) {
    return 0;
  }
  const Json written = train::trainer_state_to_json(state);
  if (train::trainer_state_to_json(train::trainer_state_from_json(written, "rewritten")) != written)
    fuzz_finding("trainer_state.json writer output does not re-read to itself");
  return 0;
}

}  // namespace upcycle::fuzz
