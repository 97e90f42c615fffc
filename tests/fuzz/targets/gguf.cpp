// Fuzz target (fuzz_targets.h): the bytes are a GGUF file. The reader, the metadata → config mapping
// and the dequantisers must reject bad input with an Error: a file that opens is read through every
// accessor, planned as a model, and its small tensors are dequantised.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/ggml_dequantize.h"
#include "io/gguf_file.h"
#include "io/gguf_model.h"
#include "../fuzz_targets.h"

namespace upcycle::fuzz {
namespace {

void exercise(const GgufFile& f) {
  for (const std::string& key : f.keys()) {
    try { f.describe(key); } catch (const Error&) {}
    try { f.string_array(key); } catch (const Error&) {}
    try { f.int_array(key); } catch (const Error&) {}
  }
  for (const auto& t : f.tensors()) {
    const GgmlTypeInfo& info = ggml_type_info(t.type);
    if (!info.dequantizable || t.nbytes > (1u << 20)) continue;
    std::vector<std::byte> raw(t.nbytes);
    f.read_tensor_bytes(t, 0, t.nbytes, raw.data());
    std::vector<float> out(t.numel());
    dequantize_blocks(t.type, raw.data(), out.data(), t.numel() / info.block_size);
  }
  try { plan_gguf_import(f); } catch (const Error&) {}
}

}  // namespace

int fuzz_gguf(const uint8_t* data, size_t size) {
  const auto path = write_scratch("model.gguf", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    exercise(GgufFile::open(path));
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace upcycle::fuzz
