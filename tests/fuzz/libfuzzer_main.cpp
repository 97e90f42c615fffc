// The libFuzzer entry point of one target: compiled once per target with
// -DUPCYCLE_FUZZ_TARGET=fuzz_<name> (tests/fuzz/CMakeLists.txt).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  upcycle::fuzz::set_current_input(data, size);
  return upcycle::fuzz::UPCYCLE_FUZZ_TARGET(data, size);
}
